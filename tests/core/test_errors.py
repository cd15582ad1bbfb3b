"""One error tree (core/errors.py): every domain error is Invalid, Conflict, PermissionDenied or NotFound (issue 16),
mapped to HTTP by its kind in one place (core/api/errors.py), never by comparing its code; and the codes and
statuses clients saw before the tree are the ones they see now."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from rest_framework.response import Response

from core.api.errors import exception_handler
from core.errors import Conflict, Invalid, NotFound, PermissionDenied, WorkoutError

APPS = ("core", "accounts", "rules", "restructuring")
KINDS = (Invalid, Conflict, PermissionDenied, NotFound)

# Each domain error, by its class's name (a class may move between modules), with the code and status the API
# answered before the tree.
SEEN_BY_CLIENTS = {
    "WorkoutError": ("workout_error", 400),
    "ValidationError": ("invalid", 400),
    "ImportRowError": ("import_row_invalid", 400),
    "ImportFileError": ("import_file_invalid", 400),
    "OperationActorError": ("operation_actor_invalid", 400),
    "MissingPriceError": ("missing_price", 400),
    "ShockError": ("shock_invalid", 400),
    "RuleValidationError": ("rule_invalid", 400),
    "FeasibilityError": ("feasibility_not_computable", 400),
    "LiquidationPlanError": ("liquidation_not_plannable", 400),
    "OverrideRequiredError": ("override_reason_required", 400),
    "ConflictError": ("conflict", 409),
    "NegotiationError": ("negotiation_conflict", 409),
    "StaleTermsError": ("terms_changed", 409),
    "CaseTransitionError": ("case_transition_not_allowed", 409),
    "RuleSetNotEditableError": ("ruleset_not_editable", 409),
    "PermissionRefusedError": ("permission_denied", 403),
    "ApprovalRefusedError": ("permission_denied", 403),  # negotiation: approvals, four eyes, limits
    "PermissionDeniedError": ("permission_denied", 403),  # liquidation: sending a case alone, booking fills
    "PublishPermissionError": ("permission_denied", 403),  # rules: publishing
    "NotFoundError": ("not_found", 404),
    "EnrolmentLinkInvalidError": ("enrolment_link_invalid", 404),
}
# The names the tree gave the kinds that had older ones: the same classes.
ALIASES = {
    "Invalid": "ValidationError",
    "Conflict": "ConflictError",
    "PermissionDenied": "PermissionRefusedError",
    "NotFound": "NotFoundError",
}


def _project_errors() -> dict[str, type[WorkoutError]]:
    """Every subclass of WorkoutError the apps define, by name (every module of the apps imported first)."""
    for app in APPS:
        package = importlib.import_module(app)
        for module in pkgutil.walk_packages(package.__path__, f"{app}."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    found: dict[str, type[WorkoutError]] = {}
    todo: list[type[WorkoutError]] = [WorkoutError]
    while todo:
        cls = todo.pop()
        if cls.__module__.split(".")[0] in APPS:
            found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def _answer(error: WorkoutError) -> tuple[str, int]:
    response = exception_handler(error, {})
    assert isinstance(response, Response)
    return str(response.data["error"]["code"]), response.status_code


def _instance(cls: type[WorkoutError]) -> WorkoutError:
    error = cls.__new__(cls)  # some take keyword-only arguments of their own; the handler reads these three
    WorkoutError.__init__(error, "refused")
    return error


def test_every_domain_error_is_of_one_of_the_four_kinds() -> None:
    errors = _project_errors()
    assert set(SEEN_BY_CLIENTS) - {ALIASES.get(name, name) for name in errors} == set()
    kindless = sorted(name for name, cls in errors.items() if cls is not WorkoutError and not issubclass(cls, KINDS))
    assert kindless == []
    assert [sum(issubclass(cls, kind) for kind in KINDS) for cls in errors.values() if cls is not WorkoutError] == [
        1 for cls in errors.values() if cls is not WorkoutError
    ]


@pytest.mark.parametrize("name", sorted(SEEN_BY_CLIENTS))
def test_clients_see_the_codes_and_statuses_they_saw_before(name: str) -> None:
    errors = _project_errors()
    cls = errors.get(name) or errors[next(new for new, old in ALIASES.items() if old == name)]
    assert _answer(_instance(cls)) == SEEN_BY_CLIENTS[name]


@pytest.mark.parametrize(
    ("kind", "status"), [(Invalid, 400), (Conflict, 409), (PermissionDenied, 403), (NotFound, 404)]
)
def test_the_status_follows_the_kind_whatever_the_code(kind: type[WorkoutError], status: int) -> None:
    class Named(kind):  # type: ignore[valid-type, misc]
        code = "something_of_its_own"

    class Impostor(WorkoutError):  # a code is a name for the client, not a kind
        code = kind.code

    assert _answer(Named("refused")) == ("something_of_its_own", status)
    assert _answer(Impostor("refused")) == (kind.code, 400)


def test_the_older_names_are_the_kinds_themselves() -> None:
    import core.errors as errors

    for new, old in ALIASES.items():
        assert getattr(errors, new) is getattr(errors, old)

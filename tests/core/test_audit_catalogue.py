"""The catalogue of audit actions (core/audit_catalogue.py): every action is declared once, with its object type
and audience; the source writes no action name, object type or AuditEntry of its own outside the catalogue."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.apps import apps

from core.audit_catalogue import (
    Audience,
    AuditAction,
    AuditActionFamily,
    action_names,
    actions_for,
    audit_action,
    audit_actions,
    drifted_names,
)

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "config", "core", "restructuring", "rules")
# The mechanism and the declarations.
CATALOGUE = {"core/audit_catalogue.py"} | {f"{app}/audit_events.py" for app in APPS}


def _sources() -> list[Path]:
    return sorted(
        path
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts and str(path.relative_to(ROOT)) not in CATALOGUE
    )


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string nodes that are docstrings (they may name actions: they explain them)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _kept_names(tree: ast.AST) -> set[int]:
    """The ids of the strings a model declares as the name its events keep after a move between apps
    (`audit_object_type = "core.apitoken"` in its class): that is the declaration of the name, not a use of it."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "audit_object_type" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    }


def _offences(path: Path, names: set[str], object_types: set[str], prefixes: re.Pattern[str]) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = _docstrings(tree) | _kept_names(tree)
    where = str(path.relative_to(ROOT))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            if text in names or prefixes.match(text):
                found.append(f"{where}:{node.lineno}: the action {text!r}")
            elif text in object_types:
                found.append(f"{where}:{node.lineno}: the object type {text!r}")
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str) and prefixes.match(head.value + "x"):
                found.append(f"{where}:{node.lineno}: an action built as an f-string")
        elif isinstance(node, ast.Call):
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if called == "AuditEntry":
                found.append(f"{where}:{node.lineno}: an AuditEntry built by hand")
    return found


def test_no_action_object_type_or_entry_is_written_outside_the_catalogue() -> None:
    declared = list(audit_actions())
    names = {a.name for a in declared if isinstance(a, AuditAction)}
    object_types = {a.object_type for a in declared}
    prefixes = {a.name.partition(".")[0] for a in declared if isinstance(a, AuditAction)}
    prefixes |= {a.prefix for a in declared if isinstance(a, AuditActionFamily)}
    pattern = re.compile(rf"^({'|'.join(sorted(prefixes))})\.[a-z_]+$")
    sources = _sources()
    assert len(sources) > 100  # the scan reads the source tree

    offences = [o for path in sources for o in _offences(path, names, object_types, pattern)]

    assert offences == [], "use the declaration of core/audit_catalogue.py:\n" + "\n".join(offences)


def test_every_action_is_declared_once_for_a_model_and_compliance_reads_it() -> None:
    declared = list(audit_actions())
    names = [a.name if isinstance(a, AuditAction) else a.prefix for a in declared]

    assert len(names) == len(set(names))
    kept = {getattr(m, "audit_object_type", None): m for m in apps.get_models()}
    for action in declared:
        app_label, _, model = action.object_type.partition(".")
        # a model that moved between apps keeps its events' name (accounts.ApiToken: "core.apitoken")
        assert action.object_type in kept or apps.get_model(app_label, model) is not None
        assert Audience.COMPLIANCE in action.audience
    # every workflow action officers read: a case's events are the same for them and compliance
    for action in declared:
        if action.object_type.startswith("restructuring."):
            assert Audience.OFFICER in action.audience, action


def test_what_the_client_reads_is_declared_with_the_action() -> None:
    client = set(actions_for(Audience.CLIENT))

    # the transitions of a case and of the offers, installments paid and top-ups; never the officers' work
    assert {"case.open", "case.offer_expired", "proposal.offer", "proposal.counter_offer", "installment.paid"} <= client
    assert {"topup.declare", "topup.confirm"} <= client
    assert not client & {"proposal.draft", "proposal.approval", "proposal.approve", "feasibility.report"}
    assert not client & {"case.rules_proposals", "proposal.withdraw", "staff.role_grant", "ruleset.publish"}
    # issue 17: its payments, the contacts made with it and its promises; never the notes nor the desk's follow-ups
    assert {"repayment.record", "contact.log", "promise.make", "promise.kept", "promise.broken"} <= client
    assert not client & {"note.add", "case.follow_up", "case.followed_up"}
    # issue 18: its documents, its own uploads and those the lender added to its cases
    assert "document.upload" in client
    assert len(client) == 32


def test_stored_names_stay_readable_and_drifted_ones_are_filed_under_the_schemes_name() -> None:
    assert drifted_names() == {"case.offer_expired": "case.expire", "proposal.approval": "proposal.approve"}
    assert action_names("proposal.approve") == ("proposal.approval", "proposal.approve")
    assert action_names("case.expire") == ("case.offer_expired",)
    assert action_names("case.open") == ("case.open",)
    offer_expired = audit_action("case.offer_expired")
    assert isinstance(offer_expired, AuditAction)
    assert offer_expired.name == "case.offer_expired"  # written as it always was
    family = audit_action("operation.import_book")
    assert isinstance(family, AuditActionFamily)
    assert family.object_type == "core.operation"
    assert audit_action("case.unheard_of") is None


@pytest.mark.parametrize("name", ["Case.Open", "case", "case.open.now", "1.open"])
def test_a_name_outside_the_scheme_is_refused(name: str) -> None:
    from django.contrib.auth.models import User

    from core.audit_catalogue import STAFF, declare

    with pytest.raises(ValueError, match=r"object\.verb"):
        declare(name, User, audience=STAFF, summary="")

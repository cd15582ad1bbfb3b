"""No write off the record, for management commands: every command of the project's apps (and Django's
createsuperuser and changepassword, which the project replaces) is in COMMANDS, as writing or read-only.

- A writing command, run on a small book, leaves its `operation.<name>` event and Operation naming the --actor
  user, or the "command:<os user>@<host>" system actor; no event of the run names anyone else; the chain verifies.
- The same command, failing (a bad file, a bad argument, no DEBUG for the demo's), changes nothing at all.
- A read-only command changes nothing at all (every table's rows, compared by checksum on PostgreSQL).
- A command that is not in COMMANDS fails `test_every_command_is_in_the_table`.
"""

from __future__ import annotations

import getpass
import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from accounts.models import Client
from accounts.services.api_tokens import api_token_create
from accounts.services.book_import import book_import
from core.audit import audit_verify
from core.commands import OperationCommand
from core.models import AuditEvent, IdempotencyRecord, Operation
from core.operations import command_system_actor
from restructuring.models import Case, CaseState, Team, TeamMembership
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.feasibility import feasibility_compute
from restructuring.services.liquidation import case_liquidate
from rules.models import RuleSet, RuleSetStatus
from rules.services import DEFAULT_RULES, ruleset_clone, ruleset_load
from tests.api.conftest import staff_user
from tests.restructuring.helpers import account, btc, sweep_only

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
BOOK = EXAMPLES / "book.json"
PRICES = EXAMPLES / "prices.csv"
MISSING = "/nonexistent/workout-test-file.json"
PROJECT_APPS = {"core", "accounts", "restructuring", "rules", "demo", "core.auth_commands"}
NEW_PASSWORD = "a long new password 7"

Context = dict[str, Any]


# ------------------------------------------------------------------------------------------------ givens


def _nothing() -> Context:
    return {}


def _book() -> Context:
    """Two accounts of 10 BTC at 100: one healthy, one in margin call (tests/restructuring/helpers.py)."""
    instrument = btc()
    account("OK", instrument, band="healthy")
    return {"btc": instrument, "call": account("CALL", instrument, band="margin_call")}


def _margin_call() -> Context:
    given = _book()
    cases_apply_risk(sweep_id=sweep_only().pk)
    given["case"] = Case.objects.get(account=given["call"])
    assert given["case"].state == CaseState.MARGIN_CALL
    return given


def _liquidation_plan() -> Context:
    given = _margin_call()
    Case.objects.filter(pk=given["case"].pk).update(deadline=timezone.now() - timedelta(hours=2))
    given["plan"] = case_liquidate(case_id=given["case"].pk, reason="deadline")
    return given


def _report() -> Context:
    given = _margin_call()
    (given["report_id"],) = feasibility_compute(case_ids=[given["case"].pk], key="given")
    return given


def _draft_rules() -> Context:
    published = ruleset_load(DEFAULT_RULES, publish=True)
    return {"draft": ruleset_clone(rule_set_id=published.pk)}


def _desk_cases() -> Context:
    """Two margin calls, assigned by the sweep to alice and bob of one team."""
    team = Team.objects.create(name="Desk", senior=staff_user("sara", "senior_credit_officer"))
    for name in ("alice", "bob"):
        TeamMembership.objects.create(team=team, user=staff_user(name, "credit_officer"))
    instrument = btc()
    account("CALL1", instrument, band="margin_call")
    account("CALL2", instrument, band="margin_call")
    cases_apply_risk(sweep_id=sweep_only().pk)
    return {}


def _imported(path: Path) -> Context:
    book_import(path=path)
    return {}


def _a_user() -> Context:
    return {"user": User.objects.create_user("bob")}


# ------------------------------------------------------------------------------------------------- table


@dataclass(frozen=True)
class Row:
    writes: bool
    given: Callable[[], Context] = _nothing
    args: Callable[[Context], list[str]] = lambda _: []
    failing: Callable[[Context], list[str]] | None = None  # a run that fails (writers); None: the run without DEBUG
    debug: bool = False  # the demo's commands run only with DEBUG=true
    actor_role: str = "senior_credit_officer"  # who --actor is (staff_enrol's issuer is an administrator)


COMMANDS: dict[str, Row] = {
    # ---- writing
    "import_book": Row(True, _nothing, lambda _: [str(BOOK)], lambda _: [MISSING]),
    "import_prices": Row(True, lambda: _imported(BOOK), lambda _: [str(PRICES)], lambda _: [MISSING]),
    "shock": Row(True, _book, lambda _: ["BTC", "-10%"], lambda _: ["NOPE", "-10%"]),
    "generate_book": Row(
        True,
        _book,
        lambda _: ["--accounts", "5", "--seed", "3", "--history-days", "20"],
        lambda _: ["--accounts", "5", "--history-days", "20", "--keep-existing"],  # a book is loaded: refused
    ),
    "sweep": Row(True, _book, lambda _: [], lambda _: ["--shards", "0"]),
    "feasibility": Row(
        True,
        _margin_call,
        lambda g: [str(g["case"].pk)],
        lambda g: [str(g["case"].pk), "999999"],  # all or nothing: one unknown case stores no report
    ),
    "liquidation_fill": Row(True, _liquidation_plan, lambda g: [str(g["plan"].pk)], lambda _: ["999999"]),
    # A draft: --publish by the draft's own author is the lead's four-eyes question (test_rules_load_* below).
    "rules_load": Row(True, _nothing, lambda _: [], lambda _: [MISSING]),
    "cases_assign": Row(
        True,
        _desk_cases,
        lambda _: ["--officer", "alice", "--to", "bob"],
        lambda _: ["--officer", "alice", "--to", "nobody"],
    ),
    "api_token": Row(
        True,
        _book,
        lambda g: ["create", "--client", g["call"].client.code],
        lambda _: ["create", "--client", "C-NOBODY"],
    ),
    "webhook_secrets_reencrypt": Row(True, _book, lambda _: [], lambda _: ["--batch-size", "0"]),
    "demo_setup": Row(True, _nothing, lambda _: ["--accounts", "10"], debug=True),
    "demo_users": Row(True, _nothing, debug=True),
    # without --actor, the clients' promises on the desk's two cases; with it, the actor's conversation (none here:
    # olga has no case of her own)
    "demo_conversation": Row(True, _desk_cases, debug=True),
    "demo_workflow_clear": Row(True, _margin_call, debug=True),
    "createsuperuser": Row(
        True,
        _nothing,
        lambda _: ["--noinput", "--username", "root2", "--email", "root2@example.com"],
        lambda _: ["--noinput", "--email", "root2@example.com"],  # no username
    ),
    "changepassword": Row(True, _a_user, lambda _: ["bob"], lambda _: ["nobody"]),
    "staff_enrol": Row(
        True,
        _nothing,
        lambda _: ["newbie", "--create", "--role", "credit_officer"],
        lambda _: ["nobody-here"],  # no such user, and no --create
        actor_role="administrator",
    ),
    # ---- read-only
    "verify_audit": Row(False, lambda: _imported(BOOK)),
    "case_graph": Row(False),  # --write rewrites docs/case-states.md, a file, not the database
    "rules_reference": Row(False),  # likewise docs/rules.md
    "events_reference": Row(False),  # likewise docs/events.md
    "rules_try": Row(False, _draft_rules, lambda g: [str(g["draft"].version)]),
    "cascade": Row(False, _book, lambda _: ["BTC", "--drop", "0.3"]),
    "feasibility_recompute": Row(False, _report, lambda g: [str(g["report_id"])]),
}


WRITING = sorted(name for name, row in COMMANDS.items() if row.writes)
READ_ONLY = sorted(name for name, row in COMMANDS.items() if not row.writes)


@pytest.fixture(autouse=True)
def _small(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.WORKOUT_FEASIBILITY_PATHS = 200
    # changepassword's prompt (Django's, read with getpass): the same new password, twice.
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": NEW_PASSWORD)


@pytest.fixture
def officer() -> User:
    """The --actor: a senior credit officer (who may also book liquidation fills)."""
    return staff_user("olga", "senior_credit_officer")


def _run(name: str, args: list[str], *, actor: str | None = None, debug: bool = False) -> str:
    out = StringIO()
    with override_settings(DEBUG=debug):
        call_command(name, *args, *(["--actor", actor] if actor else []), stdout=out, stderr=StringIO())
    return out.getvalue()


def _database_state() -> dict[str, tuple[Any, ...]]:
    """Every table's row count and, on PostgreSQL, a checksum of its rows: equal states, nothing written."""
    state = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            quoted = connection.ops.quote_name(table)
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {quoted} t"
                )
            else:
                cursor.execute(f"SELECT count(*) FROM {quoted}")
            state[table] = tuple(cursor.fetchone() or ())
    return state


def _last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def _assert_on_the_record(name: str, after: int, actor: User | None) -> Operation:
    """The run's operation event names the actor; no event of the run names another person or another command
    user; the chain verifies."""
    events = list(AuditEvent.objects.filter(sequence__gt=after))
    recorded = [event for event in events if event.action == f"operation.{name}"]
    assert len(recorded) == 1, [event.action for event in events]
    event = recorded[0]
    op = Operation.objects.get(pk=event.object_id)
    assert (event.object_type, op.name, op.channel) == ("core.operation", name, "command")
    if actor is not None:
        assert (event.actor_id, event.system_actor, op.actor_id, op.system_actor) == (actor.pk, "", actor.pk, "")
        assert op.arguments["ran_as"] == command_system_actor()
    else:
        assert (event.actor_id, op.actor_id) == (None, None)
        assert event.system_actor == op.system_actor == command_system_actor()
        assert event.system_actor.startswith("command:")
    assert (event.payload["arguments"], event.payload["outcome"]) == (op.arguments, op.outcome)
    people = {e.actor_id for e in events if e.actor_id is not None}
    assert people <= ({actor.pk} if actor else set())
    commands = {e.system_actor for e in events if e.system_actor.startswith("command:")}
    assert commands <= ({command_system_actor()} if actor is None else set())
    assert audit_verify().ok
    return op


# ----------------------------------------------------------------------------------------------- the table


def test_every_command_is_in_the_table() -> None:
    listed = {name for name, app in get_commands().items() if app in PROJECT_APPS}
    assert listed == set(COMMANDS), "a command without a row: say whether it writes, and how to run it"


def test_the_project_s_createsuperuser_and_changepassword_replace_django_s() -> None:
    commands = get_commands()
    assert (commands["createsuperuser"], commands["changepassword"]) == ("core.auth_commands",) * 2


@pytest.mark.parametrize("name", WRITING)
def test_a_writing_command_is_an_operation_command(name: str) -> None:
    assert isinstance(load_command_class(get_commands()[name], name), OperationCommand)


@pytest.mark.parametrize("name", READ_ONLY)
def test_a_read_only_command_is_not_an_operation_command(name: str) -> None:
    """Were it one, it would be in the table as writing (and tested so)."""
    assert not isinstance(load_command_class(get_commands()[name], name), OperationCommand)


# -------------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("name", WRITING)
def test_a_writing_command_run_by_the_os_user_is_on_the_record(name: str) -> None:
    row = COMMANDS[name]
    given = row.given()
    after = _last_sequence()

    _run(name, row.args(given), debug=row.debug)

    _assert_on_the_record(name, after, actor=None)


@pytest.mark.parametrize("name", WRITING)
def test_a_writing_command_run_for_an_actor_names_them(name: str) -> None:
    row = COMMANDS[name]
    officer = staff_user("olga", row.actor_role)
    given = row.given()
    after = _last_sequence()

    _run(name, row.args(given), actor=officer.username, debug=row.debug)

    _assert_on_the_record(name, after, actor=officer)


@pytest.mark.parametrize("name", WRITING)
def test_a_writing_command_that_fails_writes_nothing(name: str) -> None:
    row = COMMANDS[name]
    given = row.given()
    before = _database_state()

    # the demo's commands fail without DEBUG; the others on a bad file or argument
    args, debug = (row.args(given), False) if row.failing is None else (row.failing(given), row.debug)

    with pytest.raises(CommandError):
        _run(name, args, debug=debug)

    assert _database_state() == before


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: None, "no such user"),
        (lambda: User.objects.create_user("olga", is_active=False), "is inactive"),
        (lambda: staff_user("olga", "client"), "is not a member of staff"),
    ],
    ids=["unknown", "inactive", "client"],
)
def test_an_actor_who_may_not_act_refuses_the_run(make: Callable[[], object], problem: str) -> None:
    make()
    before = _database_state()

    with pytest.raises(CommandError, match=rf"--actor 'olga'.*{problem}"):
        _run("import_book", [str(BOOK)], actor="olga")

    assert _database_state() == before


# ------------------------------------------------------------------------------------------ read-only


@pytest.mark.parametrize("name", READ_ONLY)
def test_a_read_only_command_writes_nothing(name: str) -> None:
    row = COMMANDS[name]
    given = row.given()
    before = _database_state()

    _run(name, row.args(given))

    assert _database_state() == before


# -------------------------------------------------------------------------------------------- details


def test_an_import_records_the_file_as_given_and_its_digest() -> None:
    _run("import_book", [str(BOOK)])

    op = Operation.objects.get(name="import_book")
    assert op.arguments == {"file": str(BOOK), "file_sha256": hashlib.sha256(BOOK.read_bytes()).hexdigest()}
    assert op.outcome["accounts"] == {"created": 4, "updated": 0, "deleted": 0}


def test_rules_load_makes_the_actor_the_draft_s_author(officer: User) -> None:
    _run("rules_load", [], actor=officer.username)

    draft = RuleSet.objects.get()
    assert (draft.status, draft.created_by) == (RuleSetStatus.DRAFT, officer)
    assert Operation.objects.get(name="rules_load").outcome["rule_set_id"] == draft.pk


def test_rules_load_publish_without_actor_is_published_by_the_os_user() -> None:
    _run("rules_load", ["--publish"])

    published = RuleSet.objects.get(status=RuleSetStatus.PUBLISHED)
    assert published.created_by is None
    assert AuditEvent.objects.get(action="ruleset.publish").system_actor == command_system_actor()


def test_api_token_revoke_and_purge_are_on_the_record_and_list_is_not(officer: User) -> None:
    client = Client.objects.create(code="C-T", name="T")
    issued = api_token_create(client_id=client.pk)
    IdempotencyRecord.objects.create(
        scope="client:1", key="old", request_hash="0" * 64, method="POST", path="/", created_at=timezone.now()
    )
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=30))
    after = _last_sequence()

    # --actor before the action, as well as after it; the token named by the whole of it
    call_command("api_token", "--actor", officer.username, "revoke", issued.secret, stdout=StringIO())
    _run("api_token", ["purge-idempotency", "--days", "7"], actor=officer.username)
    before_list = _database_state()
    _run("api_token", ["list"])

    assert _database_state() == before_list
    events = AuditEvent.objects.filter(sequence__gt=after).order_by("sequence")
    assert [(e.action, e.actor_id) for e in events] == [
        ("api_token.revoke", officer.pk),
        ("operation.api_token", officer.pk),
        ("operation.api_token", officer.pk),
    ]
    revoke, purge = Operation.objects.filter(name="api_token").order_by("pk")
    assert (revoke.arguments["action"], revoke.outcome) == ("revoke", {"revoked": [issued.token.prefix]})
    assert revoke.arguments["prefix"] == issued.token.prefix  # never the secret
    assert not AuditEvent.objects.filter(payload__icontains=issued.secret).exists()
    assert (purge.arguments["action"], purge.outcome["deleted"]) == ("purge-idempotency", 1)


def test_changepassword_records_whose_password_changed_never_the_password() -> None:
    bob = User.objects.create_user("bob")

    _run("changepassword", ["bob"])

    bob.refresh_from_db()
    assert bob.check_password(NEW_PASSWORD)
    op = Operation.objects.get(name="changepassword")
    assert op.outcome == {"password_changed": "bob"}
    assert NEW_PASSWORD not in str(AuditEvent.objects.get(action="operation.changepassword").payload)


def test_createsuperuser_records_the_user_it_made() -> None:
    _run("createsuperuser", ["--noinput", "--username", "root2", "--email", "root2@example.com"])

    assert User.objects.get(username="root2").is_superuser
    assert Operation.objects.get(name="createsuperuser").outcome == {"created": ["root2"]}


def test_the_command_actor_is_at_most_64_characters_and_never_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_user() -> str:
        raise OSError("no user name")

    monkeypatch.setattr(getpass, "getuser", no_user)
    monkeypatch.setattr(socket, "gethostname", lambda: "h" * 300)

    actor = command_system_actor()

    assert actor.startswith("command:uid")
    assert "@hhhh" in actor
    assert len(actor) == 64

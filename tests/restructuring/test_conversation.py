"""The conversation: notes and contacts (never changed, corrected by a new entry, audited), promises to pay (one
open per case, the account's currency and places) and their tracking by the beat: kept by what arrives within the
tolerance, broken after the grace, which puts the case back on the desk (Case.follow_up_since) without moving
its state, until an officer follows it up."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import ProgrammingError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from core.audit import audit_verify
from core.errors import NotFoundError, PermissionDenied, ValidationError
from core.models import AuditEvent
from restructuring.models import Case, CaseState, CollateralTopUp, Note, PromiseStatus, PromiseToPay, Repayment
from restructuring.selectors.rule_facts import rule_facts_load
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.conversation import PromiseConflict, contact_log, note_add, promise_make
from restructuring.services.negotiation.repayments import repayment_record
from restructuring.services.negotiation.topups import topup_confirm, topup_declare
from restructuring.services.promises import promises_track
from restructuring.sla import BROKEN_PROMISE_NO_FOLLOW_UP, sla_annotate
from rules.expressions import ResultKind, columns_from_rows, expression_compile
from tests.restructuring.helpers import account, accounts, btc, sweep_only, worker
from tests.restructuring.restructured import restructured
from tests.web.helpers import staff_user

FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)
D = Decimal
PROMISES_TASK = "restructuring.tasks.promises_track_task"
TERMS = {"term_months": 3, "rate_annual": "0.12", "arrears_treatment": "carry_forward", "collateral_to_add": "0"}


def _margin_call_case() -> Case:
    margin_account = account("CALL", btc(), band="margin_call")
    cases_apply_risk(sweep_id=sweep_only().pk)
    return Case.objects.select_related("account").get(account=margin_account)


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


@pytest.mark.django_db
def test_notes_are_audited_corrected_by_a_new_note_and_refused_when_bad() -> None:
    case = _margin_call_case()
    alice = staff_user("alice", "credit_officer")
    today = timezone.localdate()
    note = note_add(case_id=case.pk, text="  Client asks for a week ", remind_on=today + timedelta(days=7), actor=alice)
    fixed = note_add(case_id=case.pk, text="Two weeks, not one", actor=alice, corrects_id=note.pk)

    assert (note.text, fixed.corrects_id) == ("Client asks for a week", note.pk)
    [first, second] = _events("note.add")
    assert (first.actor_id, first.account_id, first.object_id) == (alice.pk, case.account_id, note.pk)
    assert first.payload == {
        "case_id": case.pk,
        "text": "Client asks for a week",
        "remind_on": (today + timedelta(days=7)).isoformat(),
        "corrects": None,
    }
    assert second.payload["corrects"] == note.pk

    for kwargs, field in (
        ({"text": "   "}, "text"),
        ({"text": "x", "remind_on": today - timedelta(days=1)}, "remind_on"),
        ({"text": "x", "remind_on": today + timedelta(days=400)}, "remind_on"),
        ({"text": "x", "corrects_id": note.pk + 99}, "corrects"),
        ({"text": "x" * 10_001}, "text"),
    ):
        with pytest.raises(ValidationError) as caught:
            note_add(case_id=case.pk, actor=alice, **kwargs)
        assert caught.value.context["field"] == field
    with pytest.raises(NotFoundError):
        note_add(case_id=case.pk + 99, text="x", actor=alice)
    with pytest.raises(PermissionDenied):
        note_add(case_id=case.pk, text="x", actor=staff_user("carol", "compliance"))
    assert Note.objects.count() == 2
    assert len(_events("note.add")) == 2


@pytest.mark.django_db(transaction=True)
def test_notes_and_contacts_are_never_changed() -> None:
    case = _margin_call_case()
    alice = staff_user("alice", "credit_officer")
    note = note_add(case_id=case.pk, text="first", actor=alice)
    contact = contact_log(case_id=case.pk, channel="call", direction="outbound", outcome="no_answer", actor=alice)
    for table, pk in (("restructuring_note", note.pk), ("restructuring_contact", contact.pk)):
        for sql in (f"UPDATE {table} SET created_at = now() WHERE id = %s", f"DELETE FROM {table} WHERE id = %s"):
            with (
                pytest.raises(ProgrammingError, match="Cannot update or delete"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(sql, [pk])
    assert Note.objects.get(pk=note.pk).text == "first"


@pytest.mark.django_db
def test_contacts_are_logged_with_channel_direction_outcome_and_person() -> None:
    case = _margin_call_case()
    alice = staff_user("alice", "credit_officer")
    contact = contact_log(
        case_id=case.pk,
        channel="call",
        direction="outbound",
        outcome="promise",
        person="J. Smith, treasurer",
        summary="Will wire 300 on Friday",
        actor=alice,
    )
    [event] = _events("contact.log")
    assert event.payload == {
        "case_id": case.pk,
        "channel": "call",
        "direction": "outbound",
        "outcome": "promise",
        "person": "J. Smith, treasurer",
        "summary": "Will wire 300 on Friday",
        "corrects": None,
    }
    assert event.object_id == contact.pk
    for field, bad in (("channel", "fax"), ("direction", "sideways"), ("outcome", "maybe")):
        kwargs = {"channel": "call", "direction": "inbound", "outcome": "reached", field: bad}
        with pytest.raises(ValidationError) as caught:
            contact_log(
                case_id=case.pk,
                actor=alice,
                channel=kwargs["channel"],
                direction=kwargs["direction"],
                outcome=kwargs["outcome"],
            )
        assert caught.value.context["field"] == field


@pytest.mark.django_db
def test_a_promise_is_one_at_a_time_in_the_accounts_currency() -> None:
    case = _margin_call_case()
    alice = staff_user("alice", "credit_officer")
    friday = timezone.localdate() + timedelta(days=3)
    with pytest.raises(ValidationError, match="USD") as caught:
        promise_make(case_id=case.pk, amount=D("300.001"), due=friday, method="bank_transfer", actor=alice)
    assert caught.value.context["field"] == "amount"
    with pytest.raises(ValidationError) as caught:
        promise_make(case_id=case.pk, amount=D("300"), due=friday - timedelta(days=7), method="card", actor=alice)
    assert caught.value.context["field"] == "due"
    with pytest.raises(ValidationError) as caught:
        promise_make(case_id=case.pk, amount=D("300"), due=friday, method="barter", actor=alice)
    assert caught.value.context["field"] == "method"
    with pytest.raises(NotFoundError):  # another client's case: not found
        promise_make(case_id=case.pk, amount=D("300"), due=friday, method="card", client_id=case.account.client_id + 9)

    promise = promise_make(case_id=case.pk, amount=D("300.00"), due=friday, method="bank_transfer", actor=alice)
    assert (promise.status, promise.source, promise.made_by_id) == ("open", "officer", alice.pk)
    with pytest.raises(PromiseConflict, match=r"has an open promise \(\$300.00 by"):
        promise_make(case_id=case.pk, amount=D("100"), due=friday, method="card", client_id=case.account.client_id)
    [event] = _events("promise.make")
    assert (event.to_state, event.payload["amount"], event.payload["due"]) == ("open", "300.00", friday.isoformat())


@pytest.mark.django_db
@FAST
def test_a_promise_is_kept_by_a_partial_payment_within_the_tolerance() -> None:
    case, schedule, alice = restructured(TERMS, accrued=D("30.00"))
    due = timezone.localdate() + timedelta(days=2)
    promise = promise_make(case_id=case.pk, amount=D("100.00"), due=due, method="bank_transfer", actor=alice)

    assert promises_track().as_dict() == {"kept": 0, "broken": 0, "open": 1}  # nothing arrived, not yet due
    repayment_record(installment_id=schedule[0].pk, amount=D("98.99"), actor=alice)
    assert promises_track().open == 1  # 98.99 < 100.00 x (1 - 1%)
    repayment_record(installment_id=schedule[0].pk, amount=D("0.01"), actor=alice)  # 99.00: within 1%
    assert promises_track().as_dict() == {"kept": 1, "broken": 0, "open": 0}
    promise.refresh_from_db()
    assert (promise.status, promise.received) == (PromiseStatus.KEPT, D("99.00"))
    assert promises_track().as_dict() == {"kept": 0, "broken": 0, "open": 0}  # idempotent
    [kept] = _events("promise.kept")
    assert (kept.system_actor, kept.from_state, kept.to_state) == ("promises", "open", "kept")
    assert kept.payload["received"] == "99.00"


@pytest.mark.django_db
def test_a_promise_is_kept_by_a_confirmed_top_up() -> None:
    case = _margin_call_case()
    alice = staff_user("alice", "credit_officer")
    promise_make(
        case_id=case.pk,
        amount=D("250"),
        due=timezone.localdate(),
        method="crypto_transfer",
        client_id=case.account.client_id,
    )
    topup = topup_declare(account_id=case.account_id, client_id=case.account.client_id, amount=D("250"))
    assert promises_track().open == 1  # declared is not arrived
    topup_confirm(topup_id=topup.pk, actor=alice)
    assert promises_track().kept == 1
    assert CollateralTopUp.objects.get(pk=topup.pk).status == "confirmed"


@pytest.mark.django_db
@override_settings(WORKOUT_PROMISE_GRACE_DAYS=1)
def test_a_broken_promise_puts_the_case_back_on_the_desk_until_followed_up() -> None:
    case = _margin_call_case()
    alice = staff_user("alice", "credit_officer")
    today = timezone.localdate()
    promise = promise_make(case_id=case.pk, amount=D("300"), due=today, method="card", actor=alice)

    # the clock moves: the end of the due date plus one day of grace is the deadline
    day_after = timezone.now() + timedelta(days=1)
    assert promises_track(now=day_after).open == 1  # still within the grace
    later = timezone.now() + timedelta(days=2, hours=1)
    assert promises_track(now=later).as_dict() == {"kept": 0, "broken": 1, "open": 0}

    case.refresh_from_db()
    promise.refresh_from_db()
    assert (promise.status, promise.received, promise.resolved_at) == (PromiseStatus.BROKEN, D(0), later)
    assert case.state == CaseState.MARGIN_CALL  # the state machine did not move
    assert case.follow_up_since == later
    assert [e.action for e in AuditEvent.objects.filter(system_actor="promises").order_by("sequence")] == [
        "promise.broken",
        "case.follow_up",
    ]
    assert promises_track(now=later).as_dict() == {"kept": 0, "broken": 0, "open": 0}

    # a new promise can be taken now; a contact follows the case up
    contact_log(case_id=case.pk, channel="email", direction="outbound", outcome="message_left", actor=alice)
    case.refresh_from_db()
    assert case.follow_up_since is None
    [followed] = _events("case.followed_up")
    assert (followed.actor_id, followed.payload["since"]) == (alice.pk, later.isoformat())
    assert promise_make(case_id=case.pk, amount=D("300"), due=today, method="card", actor=alice).status == "open"
    assert audit_verify().ok


@pytest.mark.django_db
@override_settings(WORKOUT_PROMISE_GRACE_DAYS=0)
def test_money_arriving_after_the_deadline_does_not_keep_a_promise() -> None:
    case = _margin_call_case()
    alice = staff_user("alice", "credit_officer")
    promise = promise_make(case_id=case.pk, amount=D("50"), due=timezone.localdate(), method="card", actor=alice)
    topup = topup_declare(account_id=case.account_id, client_id=case.account.client_id, amount=D("50"))
    topup_confirm(topup_id=topup.pk, actor=alice)
    # the run happens two days later, but the top-up is counted only if it arrived before the deadline: it did
    assert promises_track(now=timezone.now() + timedelta(days=2)).kept == 1
    PromiseToPay.objects.filter(pk=promise.pk).update(status=PromiseStatus.OPEN, resolved_at=None, received=None)
    # had the promise been made (and due) a week earlier, the same top-up comes too late
    PromiseToPay.objects.filter(pk=promise.pk).update(
        due=timezone.localdate() - timedelta(days=7), created_at=timezone.now() - timedelta(days=8)
    )
    assert promises_track().broken == 1


@pytest.mark.postgres
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_the_promises_task_delivered_twice_on_a_real_worker_breaks_each_promise_once() -> None:
    alice = staff_user("alice", "credit_officer")
    instrument = btc()
    accounts(instrument, "margin_call", 3)
    cases_apply_risk(sweep_id=sweep_only().pk)
    for case in Case.objects.all():
        promise_make(case_id=case.pk, amount=D("10"), due=timezone.localdate(), method="card", actor=alice)
    # the clock moves a week on: the promises were due a week ago (the worker runs on the real clock)
    PromiseToPay.objects.update(
        due=timezone.localdate() - timedelta(days=7), created_at=timezone.now() - timedelta(days=8)
    )
    with worker(concurrency=2) as w:
        first, second = w.send(PROMISES_TASK), w.send(PROMISES_TASK)
        results = [w.wait_for_results(1, task_id=task_id)[0] for task_id in (first, second)]
    assert sorted(r["broken"] for r in results) == [0, 3]
    assert PromiseToPay.objects.filter(status=PromiseStatus.BROKEN).count() == 3
    assert len(_events("promise.broken")) == len(_events("case.follow_up")) == 3
    assert Case.objects.filter(follow_up_since__isnull=False).count() == 3


@pytest.mark.django_db
@override_settings(WORKOUT_PROMISE_GRACE_DAYS=0)
def test_the_rules_read_the_clients_promise_history() -> None:
    case = _margin_call_case()
    alice = staff_user("alice", "credit_officer")
    today = timezone.localdate()
    promise_make(case_id=case.pk, amount=D("10"), due=today, method="card", actor=alice)
    promises_track(now=timezone.now() + timedelta(days=2))  # broken
    promise_make(case_id=case.pk, amount=D("10"), due=today, method="card", actor=alice)
    topup = topup_declare(account_id=case.account_id, client_id=case.account.client_id, amount=D("10"))
    topup_confirm(topup_id=topup.pk, actor=alice)
    promises_track()  # kept
    promise_make(case_id=case.pk, amount=D("10"), due=today, method="card", actor=alice)  # open

    cases = list(Case.objects.select_related("account__client").filter(pk=case.pk))
    [row] = rule_facts_load(cases, timezone.now()).rows
    assert (row["promises_made"], row["promises_kept"], row["promises_broken"]) == (3.0, 1.0, 1.0)
    condition = expression_compile(
        "promises_broken >= 1 and promises_kept < promises_made", ResultKind.CONDITION, rule="r", field="when"
    )
    columns = columns_from_rows([row], condition.facts_read)
    assert condition.evaluate(columns, 1).tolist() == [True]


@pytest.mark.django_db
@FAST
@override_settings(DEBUG=True)
def test_the_demos_reset_clears_the_append_only_tables_with_the_cases() -> None:
    case, schedule, alice = restructured(TERMS, accrued=D("30.00"))
    repayment_record(installment_id=schedule[0].pk, amount=D("10.00"), actor=alice)
    note_add(case_id=case.pk, text="n", actor=alice)
    contact = contact_log(case_id=case.pk, channel="call", direction="inbound", outcome="promise", actor=alice)
    promise_make(
        case_id=case.pk, amount=D("5"), due=timezone.localdate(), method="card", actor=alice, contact_id=contact.pk
    )
    call_command("demo_workflow_clear", stdout=io.StringIO())
    assert not Case.objects.exists()
    for model in (Note, PromiseToPay, Repayment):
        assert not model.objects.exists()


@pytest.mark.django_db
@override_settings(WORKOUT_PROMISE_GRACE_DAYS=0)
def test_a_broken_promise_runs_the_follow_up_clock_until_a_contact_stops_it() -> None:
    case = _margin_call_case()
    alice = staff_user("alice", "credit_officer")
    promise_make(case_id=case.pk, amount=D("10"), due=timezone.localdate(), method="card", actor=alice)
    broke = timezone.now() + timedelta(days=2)
    promises_track(now=broke)

    later = broke + timedelta(hours=30)  # the default target is 24 hours
    row = sla_annotate(Case.objects.filter(pk=case.pk), later).get()
    assert (row.sla_clock, row.sla_started_at, row.sla_breached) == (BROKEN_PROMISE_NO_FOLLOW_UP, broke, True)

    contact_log(case_id=case.pk, channel="call", direction="outbound", outcome="reached", actor=alice)
    row = sla_annotate(Case.objects.filter(pk=case.pk), later).get()
    assert row.sla_clock != BROKEN_PROMISE_NO_FOLLOW_UP  # followed up: back to the margin call's own clock

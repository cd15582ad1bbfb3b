"""The case state machine on its own: which transitions are allowed from where, and what they set."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from accounts.models import Client, MarginAccount
from restructuring.models import CLOSED_STATES, OPEN_STATES, CallBasis, Case, CaseState

pytestmark = pytest.mark.django_db

NOW = timezone.now()
TRANSITIONS: dict[str, tuple[set[CaseState], CaseState, dict[str, Any]]] = {
    # method: (sources, target, kwargs)
    "issue_margin_call": (
        {CaseState.WARNING},
        CaseState.MARGIN_CALL,
        {"amount": Decimal("10"), "basis": CallBasis.INITIAL, "at": NOW, "deadline": NOW + timedelta(hours=24)},
    ),
    "cure": (
        {CaseState.WARNING, CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED},
        CaseState.CURED,
        {"at": NOW},
    ),
    "propose": ({CaseState.MARGIN_CALL}, CaseState.PROPOSED, {}),
    "reject": ({CaseState.PROPOSED}, CaseState.MARGIN_CALL, {}),
    "offer": ({CaseState.PROPOSED}, CaseState.OFFERED, {}),
    "accept": ({CaseState.OFFERED}, CaseState.ACCEPTED, {}),
    "decline": ({CaseState.OFFERED}, CaseState.MARGIN_CALL, {}),
    "expire_offer": ({CaseState.OFFERED}, CaseState.MARGIN_CALL, {}),
    "counter": ({CaseState.OFFERED}, CaseState.PROPOSED, {}),
    "execute": ({CaseState.ACCEPTED}, CaseState.RESTRUCTURED, {}),
    "close": ({CaseState.RESTRUCTURED}, CaseState.CLOSED, {"at": NOW}),
    "default": ({CaseState.RESTRUCTURED}, CaseState.DEFAULTED, {}),
    "liquidate": (
        {CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.DEFAULTED},
        CaseState.LIQUIDATING,
        {},
    ),
    "complete_liquidation": ({CaseState.LIQUIDATING}, CaseState.LIQUIDATED, {"at": NOW}),
    "write_off": ({CaseState.LIQUIDATED}, CaseState.WRITTEN_OFF, {"amount": Decimal("5"), "at": NOW}),
}


def _case_in(state: str) -> Case:
    # a case placed in a state directly, as the database would hand it back (the field is protected)
    case = Case(opened_at=NOW)
    case.__dict__["state"] = state
    return case


@pytest.mark.parametrize("method", sorted(TRANSITIONS))
@pytest.mark.parametrize("state", list(CaseState))
def test_each_transition_is_allowed_exactly_from_its_sources(method: str, state: CaseState) -> None:
    sources, target, kwargs = TRANSITIONS[method]
    case = _case_in(state)
    if state in sources:
        getattr(case, method)(**kwargs)
        assert case.state == target
    else:
        with pytest.raises(TransitionNotAllowed):
            getattr(case, method)(**kwargs)
        assert case.state == state


def test_the_state_cannot_be_assigned_directly() -> None:
    case = Case(opened_at=NOW)
    with pytest.raises(AttributeError):
        case.state = CaseState.CURED


def test_closing_transitions_stamp_the_time_and_the_open_ones_do_not() -> None:
    for method, (sources, target, kwargs) in TRANSITIONS.items():
        case = _case_in(sorted(sources)[0])
        getattr(case, method)(**kwargs)
        assert (case.closed_at is not None) == (target in CLOSED_STATES), method


def test_the_margin_call_records_its_terms() -> None:
    case = _case_in(CaseState.WARNING)
    case.issue_margin_call(**TRANSITIONS["issue_margin_call"][2])
    assert (case.call_amount, case.call_basis, case.called_at, case.deadline) == (
        Decimal("10"),
        CallBasis.INITIAL,
        NOW,
        NOW + timedelta(hours=24),
    )


def test_at_most_one_open_case_per_account() -> None:
    client = Client.objects.create(code="C", name="C")
    account = MarginAccount.objects.create(code="A", client=client)
    Case.objects.create(account=account, opened_at=NOW)
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.create(account=account, opened_at=NOW)
    # a closed case does not count
    closed = _case_in(CaseState.WARNING)
    closed.account = account
    closed.cure(at=NOW)
    closed.save()
    assert Case.objects.filter(account=account).count() == 2
    assert Case.objects.filter(account=account, state__in=OPEN_STATES).count() == 1

"""SLA clocks: how long a case has waited for staff in a state that needs them, against its target.

Each clock names a wait (the case matches its condition), when the wait began, and a target in hours:
WORKOUT_SLA_HOURS by clock, overridden per team by Team.sla_hours. A case runs at most one clock at a time, the
first of CLOCKS whose condition holds. `sla_annotate` adds the clock, its start, its target and its due time to
a queryset of cases, in SQL (the queue filters and sorts on them, the escalation beat selects the breaches with
them), so reading them costs no query per case.

The broken-promise clock ("broken_promise_no_follow_up") runs from the moment a promise to pay broke
(`Case.follow_up_since`, set by restructuring/services/promises.py) until an officer logs a contact or takes a new
promise (restructuring/services/conversation.py clears it). It comes first: whatever else the case waits for, a
client who did not pay as promised is the most pressing thing on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    BooleanField,
    CharField,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models import Case as CaseWhen
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.utils.translation import gettext_lazy

from restructuring.models import LIVE_PROPOSAL_STATES, CaseState, Proposal, ProposalState

MARGIN_CALL_NO_PROPOSAL = "margin_call_no_proposal"
PROPOSAL_PENDING_APPROVAL = "proposal_pending_approval"
ACCEPTED_NOT_EXECUTED = "accepted_not_executed"
BROKEN_PROMISE_NO_FOLLOW_UP = "broken_promise_no_follow_up"

LABELS = {
    MARGIN_CALL_NO_PROPOSAL: gettext_lazy("Margin call without a proposal"),
    PROPOSAL_PENDING_APPROVAL: gettext_lazy("Proposal pending approval"),
    ACCEPTED_NOT_EXECUTED: gettext_lazy("Accepted offer not executed"),
    BROKEN_PROMISE_NO_FOLLOW_UP: gettext_lazy("Broken promise not followed up"),
}


@dataclass(frozen=True)
class Clock:
    name: str
    condition: Q
    started: object  # an expression: when the wait began


# The two facts about a case's proposals the clocks read, computed by subqueries that sla_annotate adds once, as
# aliases, for the clocks' conditions to name (each annotation built on them still repeats them in the SQL, but
# builds them once: building the five annotations was most of the queue's and the case page's query work).
_PENDING_SINCE = "sla_pending_since"  # the oldest pending proposal's wait, null when none is pending
_LIVE = "sla_live_proposal"  # a proposal still in play


def _proposal_facts() -> dict[str, Any]:
    live = Proposal.objects.filter(case_id=OuterRef("pk"), state__in=LIVE_PROPOSAL_STATES)
    pending = Proposal.objects.filter(case_id=OuterRef("pk"), state=ProposalState.PENDING_APPROVAL).order_by()
    pending_since = (
        pending.values("case_id").annotate(since=Min(Coalesce("state_changed_at", "created_at"))).values("since")
    )
    return {_PENDING_SINCE: Subquery(pending_since, output_field=DateTimeField()), _LIVE: Exists(live)}


def _clocks() -> list[Clock]:
    return [
        # A broken promise not followed up yet (a contact or a new promise clears follow_up_since).
        Clock(BROKEN_PROMISE_NO_FOLLOW_UP, Q(follow_up_since__isnull=False), F("follow_up_since")),
        # The client said yes: only staff stand between the acceptance and the new terms.
        Clock(
            ACCEPTED_NOT_EXECUTED,
            Q(state=CaseState.ACCEPTED),
            Coalesce("state_changed_at", "updated_at"),
        ),
        # The oldest proposal waiting for an approver.
        Clock(PROPOSAL_PENDING_APPROVAL, Q(**{f"{_PENDING_SINCE}__isnull": False}), F(_PENDING_SINCE)),
        Clock(
            MARGIN_CALL_NO_PROPOSAL,
            Q(state=CaseState.MARGIN_CALL) & Q(**{_LIVE: False}),
            Coalesce("state_changed_at", "called_at", "opened_at"),
        ),
    ]


def target_hours(clock: str) -> float:
    return float(settings.WORKOUT_SLA_HOURS[clock])


def sla_annotate(cases: QuerySet[Any], now: datetime) -> QuerySet[Any]:
    """Annotate `sla_clock` ("" when none runs), `sla_started_at`, `sla_target_hours`, `sla_due_at` and
    `sla_breached` (due at or before `now`) on a queryset of cases.

    Each annotation tests the clocks' conditions itself, in their order (the first that holds is the case's
    clock), rather than comparing with `sla_clock`: SQL has no way to name an expression once, so an annotation
    built on another repeats its whole text, and built on each other these five repeated the conditions (and
    their subqueries) 25 times; the queue's query took 4 ms to plan. Now they appear five times. The proposals'
    two subqueries are aliases (`sla_pending_since`, `sla_live_proposal`), not selected."""
    clocks = _clocks()
    hour = Value(timedelta(hours=1), output_field=DurationField())

    def hours(clock: Clock) -> Any:
        return Coalesce(
            Cast(KeyTextTransform(clock.name, "team__sla_hours"), FloatField()),
            Value(target_hours(clock.name)),
            output_field=FloatField(),
        )

    def due(clock: Clock) -> Any:
        return ExpressionWrapper(
            clock.started + ExpressionWrapper(hours(clock) * hour, output_field=DurationField()),  # type: ignore[operator]
            output_field=DateTimeField(),
        )

    def first(then: Any, default: Any, output_field: Any) -> CaseWhen:
        return CaseWhen(
            *(When(clock.condition, then=then(clock)) for clock in clocks), default=default, output_field=output_field
        )

    return cases.alias(**_proposal_facts()).annotate(
        sla_clock=first(lambda c: Value(c.name), Value(""), CharField()),
        sla_started_at=first(lambda c: c.started, None, DateTimeField()),
        sla_target_hours=first(hours, None, FloatField()),
        sla_due_at=first(due, None, DateTimeField()),
        sla_breached=first(
            lambda c: ExpressionWrapper(
                Q(GreaterThanOrEqual(Value(now, output_field=DateTimeField()), due(c))), output_field=BooleanField()
            ),
            None,
            BooleanField(),
        ),
    )


__all__ = [
    "ACCEPTED_NOT_EXECUTED",
    "BROKEN_PROMISE_NO_FOLLOW_UP",
    "LABELS",
    "MARGIN_CALL_NO_PROPOSAL",
    "PROPOSAL_PENDING_APPROVAL",
    "sla_annotate",
    "target_hours",
]

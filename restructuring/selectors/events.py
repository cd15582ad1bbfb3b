"""The events of a case: one definition, for the officer's case page, compliance's case history and search by case,
and the client's timeline.

An event of the audit trail is a case's when it is about
- the case itself (its transitions; its margin call, liquidation plan and collateral demand are recorded there);
- one of its proposals (their approvals are events of the proposal);
- one of its feasibility reports;
- one of its installments (those of its proposals);
- one of its documents (uploaded by the client or an officer);
- one of its messages (sent, failed, bounced: restructuring/services/messages.py);
- or its account, from the case's opening until its close, and up to a minute after it (CLOSING_SLACK): an event
  recorded in the transaction that closes the case carries the clock of its own append, a little after the
  case's `closed_at`. Top-ups are found this way, as is anything else recorded with the account while the case
  was open.

Officers and compliance read the same events of a case: every one of them, whatever its action (a name this version
does not declare included: the trail outlives the code). A client reads those whose action is declared visible to
clients (core/audit_catalogue.py, restructuring/audit_events.py), except the events of a proposal it may not see
(an officers' draft, one never offered: restructuring.selectors.client.CLIENT_VISIBLE_PROPOSALS).
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q, QuerySet

from core.audit_catalogue import Audience, actions_for
from core.models import AuditEvent
from restructuring.audit_events import (
    CASE_OBJECT,
    DOCUMENT_OBJECT,
    INSTALLMENT_OBJECT,
    NOTIFICATION_OBJECT,
    PROPOSAL_OBJECT,
    REPORT_OBJECT,
)
from restructuring.models import Case, Document, FeasibilityReport, Installment, Notification, Proposal
from restructuring.selectors.client import CLIENT_VISIBLE_PROPOSALS

CLOSING_SLACK = timedelta(minutes=1)


def case_events_q(case: Case, audience: Audience) -> Q:
    """The events of `case` that `audience` reads (module docstring), as one filter: subqueries, no query run."""
    account_window = Q(account_id=case.account_id, created_at__gte=case.opened_at)
    if case.closed_at is not None:
        account_window &= Q(created_at__lte=case.closed_at + CLOSING_SLACK)
    proposals = Proposal.objects.filter(case_id=case.pk).values("pk")
    events = (
        Q(object_type=CASE_OBJECT, object_id=case.pk)
        | Q(object_type=PROPOSAL_OBJECT, object_id__in=proposals)
        | Q(object_type=REPORT_OBJECT, object_id__in=FeasibilityReport.objects.filter(case_id=case.pk).values("pk"))
        | Q(
            object_type=INSTALLMENT_OBJECT,
            object_id__in=Installment.objects.filter(proposal__case_id=case.pk).values("pk"),
        )
        | Q(object_type=DOCUMENT_OBJECT, object_id__in=Document.objects.filter(case_id=case.pk).values("pk"))
        | Q(object_type=NOTIFICATION_OBJECT, object_id__in=Notification.objects.filter(case_id=case.pk).values("pk"))
        | account_window
    )
    if audience != Audience.CLIENT:
        return events
    hidden = proposals.exclude(CLIENT_VISIBLE_PROPOSALS)
    return events & Q(action__in=actions_for(Audience.CLIENT)) & ~Q(object_type=PROPOSAL_OBJECT, object_id__in=hidden)


def case_events(case: Case, audience: Audience) -> QuerySet[AuditEvent]:
    """The events of `case` that `audience` reads, oldest first, with their actors (one query)."""
    return AuditEvent.objects.filter(case_events_q(case, audience)).select_related("actor").order_by("sequence")

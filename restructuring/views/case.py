"""The case page: the account and its positions, the risk history, feasibility (loss curve, recovery
distribution), the proposals side by side with their explanation, schedule and value, the timeline, and the forms
of the actions the signed-in officer may take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from core.access import staff_view
from restructuring import charts, sla
from restructuring.audit_events import PROPOSAL_APPROVAL, PROPOSAL_EDIT, PROPOSAL_OBJECT
from restructuring.forms import (
    ContactForm,
    DocumentForm,
    NoteForm,
    OfferForm,
    PromiseForm,
    ReasonForm,
    RepaymentForm,
    TermsForm,
)
from restructuring.models import OPEN_STATES, CaseState, ProposalState
from restructuring.selectors.case_page import CasePage, case_page_load
from restructuring.selectors.desk import case_desk, officers_taking_cases
from restructuring.selectors.schedules import ScheduleRow
from restructuring.services.controls import said_text
from restructuring.views.timeline import Names, timeline

# Where the negotiation service takes a new proposal (an offer out or accepted waits for the client).
DRAFTABLE_STATES = (CaseState.MARGIN_CALL, CaseState.PROPOSED)
LIQUIDATABLE_STATES = (CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.DEFAULTED)
# While the margin call stands: its amount and deadline are what the case is about.
MARGIN_CALL_STATES = (CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.ACCEPTED)


@dataclass(frozen=True)
class ScheduleLine:
    """One installment of the executed restructuring as the officer works it: how far it is paid, and whether it
    is due or overdue on `today`."""

    row: ScheduleRow
    status: str  # paid, partly_paid, due, overdue (ScheduleLine.LABELS)
    paid: Decimal
    left: Decimal

    LABELS = {
        "paid": gettext_lazy("paid"),
        "partly_paid": gettext_lazy("partly paid"),
        "due": gettext_lazy("due"),
        "overdue": gettext_lazy("overdue"),
    }

    @property
    def label(self) -> str:
        return str(self.LABELS[self.status])


def restructured_schedule(page: CasePage, today: date) -> list[ScheduleLine]:
    """The executed proposal's installments (none before execution), each with its standing on `today`."""
    executed = next((v for v in page.proposals if v.proposal.state == ProposalState.EXECUTED), None)
    lines = []
    for row in executed.schedule if executed else []:
        if not row.installment_id:
            continue
        paid = row.paid_amount or Decimal(0)
        if row.status == "paid" or paid >= row.total:
            status = "paid"
        elif paid > 0:
            status = "partly_paid"
        elif row.status == "missed" or row.due < today:
            status = "overdue"
        else:
            status = "due"
        lines.append(ScheduleLine(row=row, status=status, paid=paid, left=max(row.total - paid, Decimal(0))))
    return lines


@staff_view("restructuring.view_case", "restructuring.view_proposal")
@require_GET
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    page = case_page_load(case_id)
    return render(request, "restructuring/case.html", case_context(page))


def case_context(page: CasePage, terms_form: TermsForm | None = None) -> dict[str, Any]:
    case = page.case
    report = page.report
    risk = page.risk
    results = report.results if report is not None else {}
    needs = _approvals_needed(page)
    for view in page.proposals:
        view.needs = needs.get(view.proposal.pk, "")
    now = timezone.now()
    desk = case_desk(case, now)
    return {
        "page": page,
        "case": case,
        "account": case.account,
        "client": case.account.client,
        # who owns the case and the clock it waits on (issue 17: two queries)
        "desk": desk,
        "sla_label": sla.LABELS.get(desk["sla_clock"], ""),
        "case_open": case.state in OPEN_STATES,
        # whom a senior may give the case to: read only when the page shows them the form (a callable: no query else)
        "reassign_targets": officers_taking_cases,
        "now": now,
        "risk_chart": mark_safe(charts.risk_history(page.snapshots, case.account.base_currency)),  # noqa: S308 (pygal's escaped SVG)
        "loss_chart": mark_safe(  # noqa: S308
            charts.loss_curve(
                results.get("loss_capacity", {}).get("curve", {}),
                risk.maintenance_requirement if risk else None,
                risk.equity if risk else None,
                case.account.base_currency,
            )
        ),
        "recovery_chart": mark_safe(  # noqa: S308
            charts.recovery_histogram(
                results.get("recovery", {}).get("histogram", {}),
                report.debt if report else None,
                case.account.base_currency,
            )
        ),
        "recovery": results.get("recovery", {}),
        "capacity": results.get("loss_capacity", {}),
        "recommended_valuation": next(
            (v for v in results.get("valuations", ()) if report and v["name"] == report.recommended), None
        ),
        "terms_form": terms_form or TermsForm(positions=[h.position for h in page.positions], prefix="new"),
        "reason_form": ReasonForm(),
        "offer_form": OfferForm(),
        "repayment_form": RepaymentForm(),
        "note_form": NoteForm(),
        "contact_form": ContactForm(),
        "promise_form": PromiseForm(),
        "document_form": DocumentForm(),
        "can_draft": case.state in DRAFTABLE_STATES,
        "can_liquidate": case.state in LIQUIDATABLE_STATES,
        "timeline": timeline(page.events, _names(page)),
        "restructured_schedule": restructured_schedule(page, timezone.localdate()),
        # the margin call's amount and deadline stand while the call does; once restructured (or closed) they are
        # history, in the timeline, not a deadline to meet
        "margin_call_current": case.state in MARGIN_CALL_STATES,
        "loan_rate_pct": _percent(page.loan.rate_annual if page.loan else None),
        "distance_pct": _percent(risk.distance_to_liquidation if risk else None, signed=True),
        "lgd_pct": _percent(report.loss_given_default if report else None),
        "capacity_pct": _percent(results.get("loss_capacity", {}).get("move"), signed=True),
    }


def _percent(value: Any, *, signed: bool = False) -> str:
    if value is None or value == "":
        return ""
    number = Decimal(str(value)) * 100
    return f"{number:+.2f}%" if signed else f"{number:.2f}%"


def _names(page: CasePage) -> Names:
    """What the timeline names the case's objects by, from what the page already read (no query)."""
    return Names(
        currency=page.case.account.base_currency,
        proposals={v.proposal.pk: v.proposal.name for v in page.proposals},
        installments={r.installment_id: r.number for v in page.proposals for r in v.schedule if r.installment_id},
        symbols={h.position.instrument_id: h.position.instrument.symbol for h in page.positions},
        messages={m.pk: m for m in page.messages},
    )


def _approvals_needed(page: CasePage) -> dict[int, str]:
    """By proposal id: what a pending proposal still needs, as the service said at its latest approval (the audit
    event records it); only while the approvals of its current terms stand."""
    needs: dict[int, str] = {}
    pending = {
        v.proposal.pk
        for v in page.proposals
        if v.proposal.state == ProposalState.PENDING_APPROVAL and v.valid_approvals
    }
    for event in page.events:
        if event.object_type == PROPOSAL_OBJECT and event.object_id in pending:
            if event.action == PROPOSAL_APPROVAL.name:
                said = event.payload.get("needs_said")
                needs[event.object_id] = said_text(said) if said else str(event.payload.get("needs", ""))
            elif event.action == PROPOSAL_EDIT.name:
                needs.pop(event.object_id, None)
    return needs

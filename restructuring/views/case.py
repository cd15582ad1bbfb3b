"""The case page: the account and its positions, the risk history, feasibility (loss curve, recovery
distribution), the proposals side by side with their explanation, schedule and value, the timeline, and the forms
of the actions the signed-in officer may take."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from core.access import staff_view
from restructuring import charts
from restructuring.audit_events import PROPOSAL_APPROVAL, PROPOSAL_EDIT, PROPOSAL_OBJECT
from restructuring.forms import ContactForm, NoteForm, OfferForm, PromiseForm, ReasonForm, RepaymentForm, TermsForm
from restructuring.models import CaseState, ProposalState
from restructuring.selectors.case_page import CasePage, case_page_load

# Where the negotiation service takes a new proposal (an offer out or accepted waits for the client).
DRAFTABLE_STATES = (CaseState.MARGIN_CALL, CaseState.PROPOSED)
LIQUIDATABLE_STATES = (CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.DEFAULTED)


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
    return {
        "page": page,
        "case": case,
        "account": case.account,
        "client": case.account.client,
        "now": timezone.now(),
        "risk_chart": mark_safe(charts.risk_history(page.snapshots)),  # noqa: S308 (pygal's escaped SVG)
        "loss_chart": mark_safe(  # noqa: S308
            charts.loss_curve(
                results.get("loss_capacity", {}).get("curve", {}),
                risk.maintenance_requirement if risk else None,
                risk.equity if risk else None,
            )
        ),
        "recovery_chart": mark_safe(  # noqa: S308
            charts.recovery_histogram(results.get("recovery", {}).get("histogram", {}), report.debt if report else None)
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
        "can_draft": case.state in DRAFTABLE_STATES,
        "can_liquidate": case.state in LIQUIDATABLE_STATES,
        "timeline": [(event, _readable(event.payload)) for event in page.events],
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


def _readable(payload: Any) -> list[tuple[str, str]]:
    """An audit payload as key and value, nested values as compact JSON."""
    if not isinstance(payload, dict):
        return [("", json.dumps(payload))]
    return [
        (key, value if isinstance(value, str) else json.dumps(value, separators=(", ", ": ")))
        for key, value in payload.items()
    ]


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
                needs[event.object_id] = str(event.payload.get("needs", ""))
            elif event.action == PROPOSAL_EDIT.name:
                needs.pop(event.object_id, None)
    return needs

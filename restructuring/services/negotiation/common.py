"""What the negotiation's actions share: their errors, the locked proposal and case, transitions and their audit
events, terms parsed and valued."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext
from django_fsm import TransitionNotAllowed

from core.audit import AuditEntry, audit_record_many
from core.audit_catalogue import AuditAction
from core.errors import Conflict, NotFoundError, PermissionDenied, ValidationError
from core.money import amount_check, currency_quantum
from restructuring.audit_events import W, transition_event
from restructuring.models import (
    Case,
    FeasibilityReport,
    Proposal,
    ProposalKind,
)
from restructuring.selectors.client import client_proposals
from restructuring.services.feasibility import terms_value
from restructuring.terms import Terms, TermsError, terms_hash, terms_lines


class NegotiationError(Conflict):
    """A proposal, an offer, a top-up, an installment or the case is not in a state that allows the action."""

    code = "negotiation_conflict"


class ApprovalRefusedError(PermissionDenied):
    """The actor may not: the permission, four eyes (no maker approves), authority limits."""


class StaleTermsError(Conflict):
    """The proposal changed since the actor was shown it: nothing is recorded; the message shows the new terms."""

    code = "terms_changed"


class AgreementMismatchError(Conflict):
    """The agreement a client's accept names is not the one the offer stands on (an earlier offer's, one changed
    terms replaced, or none): nothing is recorded; the message names the offer's agreement."""

    code = "agreement_mismatch"


class OverrideRequiredError(ValidationError):
    """The model flags the proposal: approving it needs the approver's reason (field `override_reason`)."""

    code = "override_reason_required"


def terms_summary(proposal: Proposal) -> str:
    """The terms in one line, as the refusal of a stale action shows them."""
    if proposal.kind == ProposalKind.LIQUIDATE:
        return "liquidate the account"
    return ", ".join(f"{label} {value}" for label, value in terms_lines(proposal.terms, {})) or "the loan as it is"


def _seen(proposal: Proposal, version: int) -> None:
    """Refuse an action on another version than the one the actor was shown."""
    if version != proposal.version:
        raise StaleTermsError(
            gettext(
                "proposal %(proposal_pk)s changed since you loaded it (you saw version %(version)s; it is now "
                "version %(proposal_version)s: %(terms)s). Nothing was recorded: read the new "
                "terms and decide again."
            )
            % {
                "proposal_pk": proposal.pk,
                "version": version,
                "proposal_version": proposal.version,
                "terms": terms_summary(proposal),
            },
            proposal_id=proposal.pk,
            version=proposal.version,
            terms=proposal.terms,
        )


def _require(actor: User, permission: str, what: str) -> None:
    if not actor.has_perm(permission):
        raise ApprovalRefusedError(
            gettext("%(actor)s may not %(what)s") % {"actor": actor.get_username(), "what": gettext(what)},
            permission=permission,
        )


def _proposal(proposal_id: int) -> Proposal:
    """The proposal and its case, both locked."""
    proposal = (
        Proposal.objects.select_for_update(of=("self",))
        .select_related("case__account__client", "feasibility_report")
        .filter(pk=proposal_id)
        .first()
    )
    if proposal is None:
        raise NotFoundError(
            gettext("proposal %(proposal_id)s does not exist") % {"proposal_id": proposal_id}, proposal_id=proposal_id
        )
    proposal.case = Case.objects.select_for_update().select_related("account__client").get(pk=proposal.case_id)
    return proposal


def _clients_proposal(proposal_id: int, client_id: int) -> Proposal:
    """The client's proposal and its case, locked, when it is one the client may see (client_proposals). Checked
    before any lock, with a plain read: naming another client's proposal, or one never offered, is a 404 that
    neither waits behind nor takes a lock on rows that are not the caller's. (Who owns a proposal, and whether it
    was ever offered or countered by the client, never changes once true, so the check holds under the lock.)"""
    if not client_proposals(client_id).filter(pk=proposal_id).exists():
        raise NotFoundError(
            gettext("offer %(proposal_id)s does not exist") % {"proposal_id": proposal_id}, proposal_id=proposal_id
        )
    return _proposal(proposal_id)


def _move(obj: Any, method: str, what: str) -> str:
    """Call a transition; a state without that edge is a conflict naming where the object is."""
    before = obj.state
    try:
        getattr(obj, method)()
    except TransitionNotAllowed:
        raise NegotiationError(
            gettext("%(what)s is %(before)s: it cannot %(action)s")
            % {"what": what, "before": before, "action": method.replace("_", " ")}
        ) from None
    return str(before)


def _event(
    obj: W,
    action: AuditAction[W],
    before: str,
    *,
    actor: User | None = None,
    system_actor: str = "",
    reason: str = "",
    **payload: Any,
) -> AuditEntry:
    """The audit event of one transition of a proposal or a case (restructuring.audit_events.transition_event)."""
    return transition_event(action, obj, before, actor=actor, system_actor=system_actor, reason=reason, **payload)


def _audit(*events: AuditEntry) -> None:
    """Write an action's events together (one lock and one write for the proposal's and the case's)."""
    audit_record_many(list(events))


def _client_actor(proposal: Proposal) -> str:
    return f"client:{proposal.case.account.client.code}"[:64]


def _terms(data: Mapping[str, Any] | Terms) -> Terms:
    try:
        return data if isinstance(data, Terms) else Terms.from_json(data)
    except TermsError as exc:
        raise ValidationError(str(exc), field=exc.field) from None


def _amounts_check(
    terms: Terms, currency: str, names: tuple[str, ...] = ("collateral_to_add", "principal_haircut")
) -> None:
    """The terms' amounts of money have at most their currency's places."""
    for name in names:
        amount_check(getattr(terms, name), currency, field=name)


def _latest_report(case: Case) -> FeasibilityReport:
    report = FeasibilityReport.objects.filter(case=case).select_related("case").order_by("-created_at", "-pk").first()
    if report is None:
        raise NegotiationError(
            gettext("case %(case_pk)s has no feasibility report yet: terms cannot be valued") % {"case_pk": case.pk}
        )
    return report


def _valued(report: FeasibilityReport, name: str, terms: Terms) -> dict[str, Any]:
    [valued] = terms_value(report, [(name, terms)], start=timezone.now().date())
    if valued.priced is None:
        field = "term_months" if "term_months" in valued.problem else "terms"
        raise ValidationError(valued.problem, field=field)
    return valued.valuation


def _set_terms(proposal: Proposal, terms: Terms, report: FeasibilityReport) -> None:
    proposal.terms = terms.to_json()
    proposal.terms_hash = terms_hash(proposal.terms)
    proposal.feasibility_report = report
    proposal.valuation = _valued(report, proposal.name, terms)
    proposal.expected_pv = Decimal(proposal.valuation["expected_pv"]["value"])


def _round(case: Case) -> int:
    return int(Proposal.objects.filter(case=case).aggregate(r=Max("round"))["r"] or 1)


def _quantum(proposal: Proposal) -> Decimal:
    return currency_quantum(proposal.case.account.base_currency)

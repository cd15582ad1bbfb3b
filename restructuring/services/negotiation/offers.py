"""Offers: the officer sends an approved proposal; the client accepts, declines or counter-proposes within the
offer's bounds; a counter-offer's follow-up (feasibility and the rules again) and its re-drive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.models import LoanStatus, MarginLoan
from core.dispatch import dispatch_on_commit
from core.errors import ValidationError
from restructuring.audit_events import (
    CASE_ACCEPT,
    CASE_COUNTER,
    CASE_DECLINE,
    CASE_OFFER,
    PROPOSAL_ACCEPT,
    PROPOSAL_COUNTER,
    PROPOSAL_COUNTER_OFFER,
    PROPOSAL_DECLINE,
    PROPOSAL_OFFER,
)
from restructuring.models import (
    LIVE_PROPOSAL_STATES,
    Agreement,
    NotificationKind,
    Proposal,
    ProposalKind,
    ProposalSource,
    ProposalState,
)
from restructuring.selectors.feasibility import counter_report_key
from restructuring.services.agreements import agreement_files_discard, agreement_issue
from restructuring.services.feasibility import feasibility_compute
from restructuring.services.negotiation.common import (
    AgreementMismatchError,
    NegotiationError,
    StaleTermsError,
    _amounts_check,
    _audit,
    _client_actor,
    _clients_proposal,
    _event,
    _latest_report,
    _move,
    _proposal,
    _quantum,
    _require,
    _seen,
    _set_terms,
    _terms,
)
from restructuring.services.notifications import notification_enqueue
from restructuring.terms import Terms, terms_hash


def offer_send(
    *,
    proposal_id: int,
    actor: User,
    version: int,
    hours: float | None = None,
    counter_bounds: Mapping[str, Any] | None = None,
) -> Proposal:
    """Send an approved proposal (the version the officer was shown) to the client: the case is OFFERED until the
    offer expires; the client may counter within the bounds (by default: WORKOUT_COUNTER_* around the offered
    terms). The restructuring agreement is drawn and kept (restructuring/services/agreements.py); its SHA-256 is in
    the offer's audit event. A liquidation is never offered."""
    _require(actor, "restructuring.offer_proposal", gettext_noop("send offers"))
    offer_hours = offer_hours_check(hours)
    drawn: list[Agreement] = []
    try:
        return _offer_send(proposal_id, actor, version, offer_hours, counter_bounds, drawn)
    except BaseException:
        agreement_files_discard(drawn)  # the rows rolled back: their files go too
        raise


def _offer_send(
    proposal_id: int,
    actor: User,
    version: int,
    offer_hours: float,
    counter_bounds: Mapping[str, Any] | None,
    drawn: list[Agreement],
) -> Proposal:
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        case = proposal.case
        if proposal.kind == ProposalKind.LIQUIDATE:
            raise NegotiationError(
                gettext(
                    "proposal %(proposal_id)s is a liquidation: it is not offered to the client; once approved, send "
                    "the case to liquidation"
                )
                % {"proposal_id": proposal_id}
            )
        _seen(proposal, version)
        before = _move(proposal, "offer", f"proposal {proposal_id}")
        case_before = _move(case, "offer", f"case {case.pk}")
        now = timezone.now()
        proposal.offered_at = now
        proposal.expires_at = now + timedelta(hours=offer_hours)
        proposal.counter_bounds = dict(counter_bounds) if counter_bounds else _default_bounds(proposal)
        agreement = agreement_issue(proposal, now=now)
        drawn.append(agreement)
        proposal.agreement = agreement
        proposal.save(update_fields=["state", "offered_at", "expires_at", "counter_bounds", "agreement", "updated_at"])
        case.save(update_fields=["state", "updated_at"])
        _audit(
            _event(
                proposal,
                PROPOSAL_OFFER,
                before,
                actor=actor,
                expires_at=proposal.expires_at.isoformat(),
                agreement_id=agreement.pk,
                agreement_sha256=agreement.sha256,
            ),
            _event(case, CASE_OFFER, case_before, actor=actor, proposal_id=proposal.pk),
        )
        notification_enqueue(
            case=case,
            kind=NotificationKind.OFFER,
            payload={
                "proposal_id": proposal.pk,
                "terms": proposal.terms,
                "expires_at": proposal.expires_at.isoformat(),
                "agreement_sha256": agreement.sha256,
            },
            dedupe_key=f"offer:{proposal.pk}",
        )
    return proposal


def offer_hours_check(hours: float | Decimal | None) -> float:
    """How long an offer stands: the house default when not given, else more than 0 and at most
    WORKOUT_OFFER_MAX_HOURS (ValidationError on `hours`). Unbounded, 1e8 hours was past the year 9999: a 500."""
    if hours is None:
        return float(settings.WORKOUT_OFFER_HOURS)
    limit = float(settings.WORKOUT_OFFER_MAX_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, int | float | Decimal) or not 0 < hours <= limit:
        raise ValidationError(
            gettext("hours %(hours)s: an offer stands more than 0 and at most %(limit)s hours")
            % {"hours": hours, "limit": format(limit, "g")},
            field="hours",
        )
    return float(hours)


def _default_bounds(proposal: Proposal) -> dict[str, str | int]:
    terms = proposal.terms
    rate = terms.get("rate_annual")
    loan_rate = (
        MarginLoan.objects.filter(account_id=proposal.case.account_id, status=LoanStatus.ACTIVE)
        .values_list("rate_annual", flat=True)
        .first()
    )
    offered_rate = Decimal(rate) if rate is not None else Decimal(loan_rate or 0)
    collateral = Decimal(terms.get("collateral_to_add", "0"))
    min_rate = max(offered_rate - Decimal(settings.WORKOUT_COUNTER_MAX_RATE_CUT), Decimal(0))
    min_collateral = collateral * Decimal(settings.WORKOUT_COUNTER_MIN_COLLATERAL_SHARE)
    return {
        "max_term_months": int(terms["term_months"]) + settings.WORKOUT_COUNTER_MAX_EXTRA_MONTHS,
        "min_rate": f"{min_rate.quantize(Decimal('0.000001')).normalize():f}",
        "min_collateral": str(min_collateral.quantize(_quantum(proposal))),
    }


def _hash_of(proposal: Proposal) -> str:
    return proposal.terms_hash or terms_hash(proposal.terms)


def _offered(proposal: Proposal, now: datetime) -> None:
    if proposal.state != ProposalState.OFFERED:
        raise NegotiationError(
            gettext("proposal %(proposal_pk)s is %(proposal_state)s: it is not an open offer")
            % {"proposal_pk": proposal.pk, "proposal_state": proposal.state}
        )
    if proposal.expires_at is not None and proposal.expires_at <= now:
        raise NegotiationError(
            gettext("the offer of proposal %(proposal_pk)s expired at %(expires)s")
            % {"proposal_pk": proposal.pk, "expires": proposal.expires_at.isoformat()}
        )


def offer_accept(
    *, proposal_id: int, client_id: int, terms_hash: str | None = None, agreement_sha256: str | None = None
) -> Proposal:
    """The client accepts the offer as it stands, and with it the agreement the offer was sent with (recorded as the
    accepted one). `terms_hash`, when given, must be the offer's (what the client read), else nothing happens
    (StaleTermsError); `agreement_sha256`, when given, must be the offer's agreement's, else nothing happens
    (AgreementMismatchError): an earlier offer's agreement, one whose terms were since changed, is never accepted."""
    with transaction.atomic():
        proposal = _clients_proposal(proposal_id, client_id)
        now = timezone.now()
        _offered(proposal, now)
        if terms_hash is not None and terms_hash != _hash_of(proposal):
            raise StaleTermsError(
                gettext(
                    "offer %(proposal_id)s: terms_hash %(terms_hash)s is not the offer's (%(offer_hash)s): "
                    "read the offer again before accepting"
                )
                % {"proposal_id": proposal_id, "terms_hash": terms_hash, "offer_hash": _hash_of(proposal)},
                proposal_id=proposal_id,
                terms_hash=_hash_of(proposal),
            )
        agreement = proposal.agreement
        if agreement_sha256 is not None:
            _agreement_named(proposal, agreement, agreement_sha256, client_id)
        before = _move(proposal, "accept", f"proposal {proposal_id}")
        case_before = _move(proposal.case, "accept", f"case {proposal.case_id}")
        proposal.decided_at = now
        proposal.accepted_agreement = agreement
        proposal.save(update_fields=["state", "decided_at", "accepted_agreement", "updated_at"])
        proposal.case.save(update_fields=["state", "updated_at"])
        actor = _client_actor(proposal)
        signed: dict[str, Any] = {}
        if agreement is not None:
            signed = {"agreement_id": agreement.pk, "agreement_sha256": agreement.sha256}
        _audit(
            _event(proposal, PROPOSAL_ACCEPT, before, system_actor=actor, **signed),
            _event(proposal.case, CASE_ACCEPT, case_before, system_actor=actor, proposal_id=proposal.pk),
        )
        notification_enqueue(
            case=proposal.case,
            kind=NotificationKind.ACCEPTED,
            payload={"proposal_id": proposal.pk, "terms": proposal.terms},
            dedupe_key=f"accept:{proposal.pk}",
        )
    return proposal


def _agreement_named(proposal: Proposal, agreement: Agreement | None, named: str, client_id: int) -> None:
    """Refuse an accept naming another agreement than the offer's (AgreementMismatchError), saying which it is."""
    if agreement is not None and named == agreement.sha256:
        return
    where = f"GET /api/v1/offers/{proposal.pk}/agreement/"
    if agreement is None:
        raise AgreementMismatchError(
            f"offer {proposal.pk} was sent without an agreement document: agreement_sha256 {named} names none of "
            "it; accept without agreement_sha256",
            proposal_id=proposal.pk,
        )
    earlier = (
        Agreement.objects.filter(sha256=named, proposal__case__account__client_id=client_id)
        .exclude(pk=agreement.pk)
        .values_list("proposal_id", "version")
        .first()
    )
    known = (
        f"is the agreement of offer {earlier[0]} (version {earlier[1]}), whose terms are not this offer's: it can no "
        "longer be accepted"
        if earlier is not None
        else "is not this offer's agreement"
    )
    raise AgreementMismatchError(
        f"offer {proposal.pk}: agreement_sha256 {named} {known}. Nothing was accepted. This offer's agreement is "
        f"{agreement.sha256} ({where}): read it, then accept naming it",
        proposal_id=proposal.pk,
        agreement_sha256=agreement.sha256,
    )


def offer_decline(*, proposal_id: int, client_id: int, reason: str) -> Proposal:
    if not reason.strip():
        raise ValidationError(gettext("a decline needs a reason"), field="reason")
    with transaction.atomic():
        proposal = _clients_proposal(proposal_id, client_id)
        now = timezone.now()
        _offered(proposal, now)
        before = _move(proposal, "decline", f"proposal {proposal_id}")
        case_before = _move(proposal.case, _after_offer(proposal, "decline"), f"case {proposal.case_id}")
        proposal.decided_at = now
        proposal.decision_reason = reason
        proposal.save(update_fields=["state", "decided_at", "decision_reason", "updated_at"])
        proposal.case.save(update_fields=["state", "updated_at"])
        actor = _client_actor(proposal)
        _audit(
            _event(proposal, PROPOSAL_DECLINE, before, system_actor=actor, reason=reason),
            _event(proposal.case, CASE_DECLINE, case_before, system_actor=actor, proposal_id=proposal.pk),
        )
    return proposal


def _after_offer(offer: Proposal, transition: str) -> str:
    """The case's transition when an offer is declined or expires: back among its proposals while others of the
    case are live (they stay approvable and offerable), else back to margin call (docs/case-states.md)."""
    others = Proposal.objects.filter(case_id=offer.case_id, state__in=LIVE_PROPOSAL_STATES).exclude(pk=offer.pk)
    return "return_to_proposals" if others.exists() else transition


def offer_counter(*, proposal_id: int, client_id: int, terms: Mapping[str, Any]) -> Proposal:
    """The client's counter-offer: the offered terms with what the client asks instead (`terms`; only
    COUNTER_MAY_CHANGE may move, within the offer's bounds), valued, as a new proposal in the next round pending
    the officers' approval; the offer is COUNTERED and the case back to PROPOSED."""
    with transaction.atomic():
        offer = _clients_proposal(proposal_id, client_id)
        now = timezone.now()
        _offered(offer, now)
        parsed = _terms({**offer.terms, **terms})
        if "collateral_to_add" in terms:  # what the client typed; the rest is as offered
            _amounts_check(parsed, offer.case.account.base_currency, ("collateral_to_add",))
        _within_bounds(parsed, offer)
        before = _move(offer, "counter", f"proposal {proposal_id}")
        case_before = _move(offer.case, "counter", f"case {offer.case_id}")
        offer.decided_at = now
        offer.save(update_fields=["state", "decided_at", "updated_at"])
        offer.case.save(update_fields=["state", "updated_at"])
        counter = Proposal(
            case=offer.case,
            round=offer.round + 1,
            source=ProposalSource.CLIENT,
            source_key=f"counter:{offer.pk}",
            name=f"counter to {offer.name}"[:100],
            countered_from=offer,
            requires_senior=offer.requires_senior,
            created_at=now,
        )
        _set_terms(counter, parsed, _latest_report(offer.case))
        counter.save()
        _move(counter, "submit", "the counter-offer")
        counter.save(update_fields=["state"])
        actor = _client_actor(offer)
        _audit(
            _event(offer, PROPOSAL_COUNTER, before, system_actor=actor, counter_id=counter.pk),
            _event(counter, PROPOSAL_COUNTER_OFFER, "", system_actor=actor, terms=counter.terms),
            _event(offer.case, CASE_COUNTER, case_before, system_actor=actor, proposal_id=counter.pk),
        )
        notification_enqueue(
            case=offer.case,
            kind=NotificationKind.COUNTER_RECEIVED,
            payload={"proposal_id": counter.pk, "offer_id": offer.pk, "terms": counter.terms},
            dedupe_key=f"counter:{counter.pk}",
        )
        _counter_followup(offer.case_id, offer.pk)
    return counter


def _counter_followup(case_id: int, offer_id: int) -> None:
    # Imported here: the tasks module imports this service.
    from restructuring.tasks import counter_followup_task

    dispatch_on_commit(
        counter_followup_task,
        {"case_id": case_id, "offer_id": offer_id},
        redrive="the feasibility re-drive beat (feasibility_redrive_task, counter-offers without their follow-up)",
    )


def counter_followup(*, case_id: int, offer_id: int) -> list[int]:
    """After a counter-offer: feasibility again on today's book and market, then the rules on it, for the new
    round beside the client's proposal. Idempotent (the report is keyed by the offer, the proposals by report)."""
    from restructuring.services.proposals import proposals_from_rules

    feasibility_compute(case_ids=[case_id], key=counter_report_key(offer_id))
    return proposals_from_rules(case_ids=[case_id])


# What a counter-offer may move, each within the offer's bounds. Everything else (a haircut, grace, a moratorium,
# reductions, the kind of schedule, the arrears) stays as offered: the offer's approvers, whose record a counter
# borrows, approved those and the bounds, nothing beyond (issue 13: a counter forgiving principal nobody saw).
COUNTER_MAY_CHANGE = ("term_months", "rate_annual", "collateral_to_add")


def _within_bounds(terms: Terms, offer: Proposal) -> None:
    offered = _terms(offer.terms)
    for name in (f.name for f in fields(Terms)):
        if name not in COUNTER_MAY_CHANGE and getattr(terms, name) != getattr(offered, name):
            raise ValidationError(
                gettext("%(name)s: a counter-offer may change only %(changeable)s; %(name)s stays as offered")
                % {"name": name, "changeable": ", ".join(COUNTER_MAY_CHANGE)},
                field=name,
            )
    bounds = offer.counter_bounds or {}
    if "max_term_months" in bounds and terms.term_months > int(bounds["max_term_months"]):
        raise ValidationError(
            gettext("term_months %(terms_term_months)s: at most %(bounds_max_term_months)s for this offer")
            % {"terms_term_months": terms.term_months, "bounds_max_term_months": bounds["max_term_months"]},
            field="term_months",
        )
    if "min_rate" in bounds and terms.rate_annual is not None and terms.rate_annual < Decimal(bounds["min_rate"]):
        raise ValidationError(
            gettext("rate_annual %(terms_rate_annual)s: at least %(bounds_min_rate)s for this offer")
            % {"terms_rate_annual": terms.rate_annual, "bounds_min_rate": bounds["min_rate"]},
            field="rate_annual",
        )
    if "min_collateral" in bounds and terms.collateral_to_add < Decimal(bounds["min_collateral"]):
        raise ValidationError(
            gettext("collateral_to_add %(terms_collateral_to_add)s: at least %(bounds_min_collateral)s for this offer")
            % {"terms_collateral_to_add": terms.collateral_to_add, "bounds_min_collateral": bounds["min_collateral"]},
            field="collateral_to_add",
        )

"""The single objects the officer's actions and forms act on, each with what its page shows of it; a missing one is
a 404."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from accounts.models import Position
from restructuring.models import Case, Installment, Proposal


def proposal_case_id(proposal_id: int) -> int:
    return int(get_object_or_404(Proposal.objects.values_list("case_id", flat=True), pk=proposal_id))


def case_get(case_id: int) -> Case:
    """The case with its account and client."""
    return get_object_or_404(Case.objects.select_related("account__client"), pk=case_id)


def case_exists(case_id: int) -> None:
    """Nothing, or a 404."""
    get_object_or_404(Case.objects.only("pk"), pk=case_id)


def proposal_get(proposal_id: int) -> Proposal:
    """The proposal with its case, account and client."""
    return get_object_or_404(Proposal.objects.select_related("case__account__client"), pk=proposal_id)


def installment_get(installment_id: int) -> Installment:
    """The installment with its proposal."""
    return get_object_or_404(Installment.objects.select_related("proposal"), pk=installment_id)


def account_open_positions(account_id: int) -> list[Position]:
    """The account's open positions with their instruments, by symbol (what the terms form may reduce)."""
    return list(
        Position.objects.filter(account_id=account_id)
        .exclude(quantity=0)
        .select_related("instrument")
        .order_by("instrument__symbol")
    )

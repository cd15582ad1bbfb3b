"""Collateral top-ups: the client declares one, operations confirm it."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.models import MarginAccount
from accounts.services import ledger
from core.audit import audit_record
from core.dispatch import dispatch_on_commit
from core.errors import NotFoundError, ValidationError
from core.money import amount_check
from restructuring.audit_events import (
    TOPUP_CONFIRM,
    TOPUP_DECLARE,
)
from restructuring.models import (
    CollateralDemand,
    CollateralTopUp,
    TopUpStatus,
)
from restructuring.services.negotiation.common import NegotiationError, _require


def topup_declare(*, account_id: int, client_id: int, amount: Decimal, reference: str = "") -> CollateralTopUp:
    """A client's declared collateral top-up: pending until operations confirm it."""
    if not (isinstance(amount, Decimal) and amount.is_finite() and amount > 0):
        raise ValidationError(
            gettext("amount %(amount)s: must be a positive amount") % {"amount": amount}, field="amount"
        )
    with transaction.atomic():
        account = MarginAccount.objects.filter(pk=account_id, client_id=client_id).first()
        if account is None:
            raise NotFoundError(
                gettext("account %(account_id)s does not exist") % {"account_id": account_id}, account_id=account_id
            )
        amount_check(amount, account.base_currency, field="amount")
        topup = CollateralTopUp.objects.create(
            account=account, amount=amount, reference=reference[:200], declared_at=timezone.now()
        )
        audit_record(
            TOPUP_DECLARE.entry(
                topup,
                account_id=account.pk,
                system_actor=f"client:{account.client.code}"[:64],
                to_state=TopUpStatus.PENDING,
                payload={"amount": amount, "reference": reference},
            )
        )
    return topup


def topup_confirm(*, topup_id: int, actor: User) -> CollateralTopUp:
    """Operations confirm a top-up: the cash is the account's; collateral demanded of it is met as far as it
    goes; the next sweep cures the case if the margin is restored (one is queued on commit)."""
    _require(actor, "restructuring.execute_proposal", gettext_noop("confirm top-ups"))
    with transaction.atomic():
        topup = CollateralTopUp.objects.select_for_update().filter(pk=topup_id).first()
        if topup is None:
            raise NotFoundError(
                gettext("top-up %(topup_id)s does not exist") % {"topup_id": topup_id}, topup_id=topup_id
            )
        if topup.status != TopUpStatus.PENDING:
            raise NegotiationError(
                gettext("top-up %(topup_id)s is %(topup_status)s")
                % {"topup_id": topup_id, "topup_status": topup.status}
            )
        now = timezone.now()
        ledger.cash_credit(account_id=topup.account_id, amount=topup.amount, now=now)
        topup.status, topup.decided_at, topup.decided_by = TopUpStatus.CONFIRMED, now, actor
        topup.save(update_fields=["status", "decided_at", "decided_by"])
        CollateralDemand.objects.filter(
            proposal__case__account_id=topup.account_id, met_at__isnull=True, amount__lte=topup.amount
        ).update(met_at=now)
        audit_record(
            TOPUP_CONFIRM.entry(
                topup,
                account_id=topup.account_id,
                actor=actor,
                from_state=TopUpStatus.PENDING,
                to_state=TopUpStatus.CONFIRMED,
                payload={"amount": topup.amount},
            )
        )
        _sweep_soon()
    return topup


def _sweep_soon() -> None:
    from accounts.tasks import sweep_run_task

    dispatch_on_commit(sweep_run_task, {}, redrive="the beat sweep (every WORKOUT_SWEEP_EVERY_SECONDS)")

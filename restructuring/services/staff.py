"""What a member of staff may do in the credit workflow: their roles (core/roles.py) and their own
authority limits (ApprovalLimit, per currency; without one the role's WORKOUT_APPROVAL_LIMITS applies). The one
place these are written.

Each write is one transaction that locks the user, checks who asks (auth's `change_user`: an administrator or a
superuser; or a named system actor, `manage.py staff_enrol`), and records exactly one audit event naming the
actor (object "auth.user", the user's id). Nobody grants or revokes a role, nor sets or clears a limit, for
themselves (PermissionRefusedError): four eyes hold for authority too. A write that would change nothing (a role
already held, the same limit) records nothing and returns False. Accounts and enrolment links are core/staff.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils.translation import gettext, gettext_noop

from core.audit import audit_record
from core.audit_catalogue import AuditAction
from core.audit_events import staff_event
from core.errors import ValidationError
from core.money import currency_quantum
from core.roles import CLIENT, STAFF_ROLES
from core.staff import (
    ADMINISTER_STAFF,
    IssuedEnrolment,
    enrolment_issue,
    staff_actor_check,
    staff_target_lock,
    staff_user_create,
)
from restructuring.audit_events import (
    STAFF_APPROVAL_LIMIT_CLEAR,
    STAFF_APPROVAL_LIMIT_SET,
    STAFF_ROLE_GRANT,
    STAFF_ROLE_REVOKE,
)
from restructuring.models import ApprovalLimit

# ApprovalLimit.amount is a DecimalField(max_digits=28, decimal_places=8): 20 digits before the point.
_LIMIT_CEILING = Decimal(10) ** 20


def _audit(action: AuditAction[User], user: User, actor: User | None, system_actor: str, **payload: Any) -> None:
    audit_record(staff_event(action, user, actor, system_actor, **payload))


def _role(role: str) -> Group:
    if role not in STAFF_ROLES:
        raise ValidationError(
            gettext("%(role)s is not a staff role: one of %(roles)s")
            % {"role": repr(role), "roles": ", ".join(STAFF_ROLES)},
            field="role",
        )
    return Group.objects.get(name=role)


def _roles_of(user: User) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


def staff_member_create(
    *,
    username: str,
    email: str = "",
    roles: Sequence[str] = (),
    actor: User | None = None,
    system_actor: str = "",
) -> IssuedEnrolment:
    """A new member of staff (core/staff.py: no password, no authenticator until enrolled) with their roles and
    their enrolment link, in one transaction: the creation's event, one grant event per role, the link's event."""
    groups = [_role(role) for role in dict.fromkeys(roles)]
    with transaction.atomic():
        user = staff_user_create(username=username, email=email, actor=actor, system_actor=system_actor)
        for group in groups:
            staff_role_grant(user_id=user.pk, role=group.name, actor=actor, system_actor=system_actor)
        return enrolment_issue(user_id=user.pk, actor=actor, system_actor=system_actor)


def staff_role_grant(*, user_id: int, role: str, actor: User | None = None, system_actor: str = "") -> bool:
    """Add the user to the role's group. False (nothing recorded) when they already hold it."""
    staff_actor_check(actor, system_actor, ADMINISTER_STAFF, gettext_noop("grant roles"))
    group = _role(role)
    with transaction.atomic():
        user = staff_target_lock(user_id, actor, gettext("grant the role %(role)s to") % {"role": role})
        held = _roles_of(user)
        if CLIENT in held:
            raise ValidationError(
                gettext("%(user)s is a client's user, not a member of staff") % {"user": user.get_username()},
                field="user",
            )
        if role in held:
            return False
        user.groups.add(group)
        _audit(STAFF_ROLE_GRANT, user, actor, system_actor, role=role, roles=sorted([*held, role]))
    return True


def staff_role_revoke(*, user_id: int, role: str, actor: User | None = None, system_actor: str = "") -> bool:
    """Take the user out of the role's group. False (nothing recorded) when they do not hold it."""
    staff_actor_check(actor, system_actor, ADMINISTER_STAFF, gettext_noop("revoke roles"))
    group = _role(role)
    with transaction.atomic():
        user = staff_target_lock(user_id, actor, gettext("revoke the role %(role)s of") % {"role": role})
        held = _roles_of(user)
        if role not in held:
            return False
        user.groups.remove(group)
        _audit(STAFF_ROLE_REVOKE, user, actor, system_actor, role=role, roles=[r for r in held if r != role])
    return True


def _currency(currency: str) -> str:
    code = currency.strip().upper()
    known = set(settings.WORKOUT_CURRENCY_DECIMALS) | {
        c for limits in settings.WORKOUT_APPROVAL_LIMITS.values() for c in limits
    }
    if code not in known:
        raise ValidationError(
            gettext("%(currency)s is not a currency here: one of %(currencies)s")
            % {"currency": repr(currency), "currencies": ", ".join(sorted(known))},
            field="currency",
        )
    return code


def _limit_amount(amount: object, currency: str) -> Decimal:
    if not isinstance(amount, Decimal):
        # a float is not exact, and a string could be anything: the caller parses the input to a Decimal
        raise ValidationError(
            gettext("a limit is a Decimal amount, not a %(type)s") % {"type": type(amount).__name__},
            field="amount",
        )
    if not amount.is_finite() or amount <= 0:
        raise ValidationError(
            gettext("a limit is a positive amount, not %(amount)s") % {"amount": amount}, field="amount"
        )
    if amount >= _LIMIT_CEILING:
        raise ValidationError(
            gettext("%(amount)s %(currency)s is too large for a limit") % {"amount": amount, "currency": currency},
            field="amount",
        )
    quantum = currency_quantum(currency)
    if amount != amount.quantize(quantum):
        raise ValidationError(
            gettext("%(currency)s amounts are in steps of %(quantum)s, not %(amount)s")
            % {"currency": currency, "quantum": format(quantum, "f"), "amount": amount},
            field="amount",
        )
    return amount.quantize(quantum)


def approval_limit_set(
    *, user_id: int, currency: str, amount: Decimal, actor: User | None = None, system_actor: str = ""
) -> bool:
    """The user's own approval authority in a currency (it replaces their role's there). False (nothing
    recorded) when it already is this amount."""
    staff_actor_check(actor, system_actor, ADMINISTER_STAFF, gettext_noop("set authority limits"))
    code = _currency(currency)
    value = _limit_amount(amount, code)
    with transaction.atomic():
        user = staff_target_lock(user_id, actor, gettext_noop("set an authority limit for"))
        limit = ApprovalLimit.objects.select_for_update().filter(user=user, currency=code).first()
        previous = None if limit is None else Decimal(limit.amount).quantize(currency_quantum(code))
        if previous == value:
            return False
        ApprovalLimit.objects.update_or_create(user=user, currency=code, defaults={"amount": value})
        _audit(STAFF_APPROVAL_LIMIT_SET, user, actor, system_actor, currency=code, amount=value, previous=previous)
    return True


def approval_limit_clear(*, user_id: int, currency: str, actor: User | None = None, system_actor: str = "") -> bool:
    """Remove the user's own limit in a currency: their roles' limits apply again. False when they had none."""
    staff_actor_check(actor, system_actor, ADMINISTER_STAFF, gettext_noop("clear authority limits"))
    code = currency.strip().upper()
    with transaction.atomic():
        user = staff_target_lock(user_id, actor, gettext_noop("clear an authority limit of"))
        limit = ApprovalLimit.objects.select_for_update().filter(user=user, currency=code).first()
        if limit is None:
            return False
        previous = Decimal(limit.amount).quantize(currency_quantum(code))
        limit.delete()
        _audit(STAFF_APPROVAL_LIMIT_CLEAR, user, actor, system_actor, currency=code, previous=previous)
    return True

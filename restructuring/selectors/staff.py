"""The staff page's read: every member of staff with their roles, limits and enrolment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, Prefetch, Subquery
from django.shortcuts import get_object_or_404
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import StaffEnrolment
from restructuring.models import ApprovalLimit
from restructuring.roles import CLIENT


@dataclass(frozen=True)
class StaffRow:
    """A member of staff as the staff page shows them."""

    user: User
    roles: tuple[str, ...]
    limits: tuple[ApprovalLimit, ...]  # their own, by currency (without one, their roles' apply)
    enrolled: bool  # a confirmed authenticator and a usable password: they can sign in (when active)
    link_expires_at: datetime | None  # their newest enrolment link still good, if any


def staff_members_load(now: datetime) -> list[StaffRow]:
    """Every user but the clients' users, by username, in a fixed number of queries."""
    confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
    pending = StaffEnrolment.objects.filter(
        user=OuterRef("pk"), used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    ).order_by("-expires_at")
    users = (
        User.objects.exclude(groups__name=CLIENT)
        .annotate(has_device=Exists(confirmed), link_expires_at=Subquery(pending.values("expires_at")[:1]))
        .prefetch_related("groups", Prefetch("approval_limits", queryset=ApprovalLimit.objects.order_by("currency")))
        .order_by("username")
    )
    return [
        StaffRow(
            user=user,
            roles=tuple(sorted(group.name for group in user.groups.all())),
            limits=tuple(user.approval_limits.all()),
            enrolled=bool(user.has_device) and user.has_usable_password(),
            link_expires_at=user.link_expires_at,
        )
        for user in users
    ]


def staff_username(user_id: int) -> str:
    """The username of a user the staff page acts on (404 when there is none)."""
    return str(get_object_or_404(User.objects.only("username"), pk=user_id).get_username())

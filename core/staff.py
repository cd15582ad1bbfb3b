"""Members of staff as accounts: creating them, their one-time enrolment links, deactivating them. Auth only: this
module knows nothing of the credit workflow (roles and authority limits are restructuring/services/staff.py's).

Each write is one function, one transaction: it locks the user it changes, checks who asks, and records one audit
event (object "auth.user", the user's id) in the same transaction. Whoever asks is a user holding auth's
`change_user` permission (an administrator, or a superuser), or a named system actor (`manage.py staff_enrol`
run without `--actor`: "command:<os user>@<host>"). Nobody does any of it to themselves (PermissionRefusedError),
and only a superuser acts on a superuser (an administrator who could reset a superuser's credentials could
become one).

The life of an account
----------------------
- Created active, with no usable password and no authenticator. Sign-in needs a password and then the
  authenticator's code, so the account can do nothing yet. It is created active rather than inactive so that
  `is_active` stays one decision, the administrator's: someone who left is deactivated and only a reactivation
  brings them back. (Were enrolment what activated an account, a link redeemed after a deactivation would bring
  its holder back.)
- An administrator issues an enrolment link, good once for WORKOUT_ENROLMENT_HOURS. Only the SHA-256 of its
  token is stored; the link is shown once, to its issuer. A new link revokes the user's earlier unused ones. No
  link is issued to an inactive user.
- Its holder opens it without signing in, chooses a password (Django's validators), scans the authenticator's
  key and types the code it shows (`enrolment_redeem`). Only when all of it holds is anything written: the
  password set, any earlier authenticator replaced by the new one, confirmed, and the link marked used; the
  event names the user as its actor. Anything wrong (an unknown, used, revoked or expired link, a password the
  validators refuse, a wrong code) changes nothing. A lost phone is re-enrolled the same way, with a new link.
- Deactivating refuses further sign-ins and ends sessions (Django's backend no longer authenticates an inactive
  user) and revokes the user's unused links; reactivating lets them sign in again with what they had.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import User
from django.core import exceptions as django_exceptions
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.audit import audit_record
from core.audit_catalogue import AuditAction
from core.audit_events import (
    STAFF_CREATE,
    STAFF_DEACTIVATE,
    STAFF_ENROL,
    STAFF_ENROLMENT_ISSUE,
    STAFF_REACTIVATE,
    staff_event,
)
from core.errors import ConflictError, NotFoundError, PermissionRefusedError, ValidationError
from core.models import StaffEnrolment

ADMINISTER_STAFF = "auth.change_user"
CREATE_STAFF = "auth.add_user"
_KEY_BYTES = 20  # the authenticator's secret: 160 bits, as RFC 4226 recommends and django-otp makes by default
_KEY_SALT = "workout.enrolment.key"


class EnrolmentLinkInvalidError(NotFoundError):
    """The link is unknown, used, revoked or expired (one answer for all: the page says to ask for a new one)."""

    code = "enrolment_link_invalid"

    def __init__(self) -> None:
        super().__init__("this link is not valid any more: ask your administrator for a new one")


@dataclass(frozen=True)
class IssuedEnrolment:
    """A link just issued: `token` is shown once, to the issuer, and stored nowhere (only its digest is)."""

    enrolment: StaffEnrolment
    token: str

    @property
    def path(self) -> str:
        return enrolment_path(self.token)


# ------------------------------------------------------------------------------------------------ helpers


def enrolment_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def enrolment_path(token: str) -> str:
    return reverse("enrol", args=[token])


def staff_actor_check(actor: User | None, system_actor: str, permission: str, what: str) -> None:
    """Exactly one of a user holding `permission` or a named system actor asks."""
    if (actor is None) == (not system_actor.strip()):
        raise ValidationError(gettext("name one actor: a user or a system actor"), field="actor")
    if actor is not None and not (actor.is_active and actor.has_perm(permission)):
        raise PermissionRefusedError(
            gettext("%(actor)s may not %(what)s") % {"actor": actor.get_username(), "what": gettext(what)},
            permission=permission,
        )


def staff_target_lock(user_id: int, actor: User | None, what: str) -> User:
    """The user acted on, locked; refused when it is the actor themselves, or a superuser and the actor is not."""
    target = User.objects.select_for_update().filter(pk=user_id).first()
    if target is None:
        raise NotFoundError(gettext("user %(user_id)s does not exist") % {"user_id": user_id}, user_id=user_id)
    if actor is not None and target.pk == actor.pk:
        raise PermissionRefusedError(
            gettext("nobody may %(what)s themselves: ask another administrator") % {"what": gettext(what)},
            user_id=user_id,
        )
    if actor is not None and target.is_superuser and not actor.is_superuser:
        raise PermissionRefusedError(
            gettext("only a superuser may %(what)s a superuser") % {"what": gettext(what)}, user_id=user_id
        )
    return target


def _audit(
    action: AuditAction[User],
    user: User,
    actor: User | None,
    system_actor: str,
    *,
    from_state: str = "",
    to_state: str = "",
    **payload: object,
) -> None:
    audit_record(staff_event(action, user, actor, system_actor, from_state=from_state, to_state=to_state, **payload))


def _unused_links(user: User) -> QuerySet[StaffEnrolment]:
    return StaffEnrolment.objects.filter(user=user, used_at__isnull=True, revoked_at__isnull=True)


def _revoke_unused(user: User, now: datetime) -> list[int]:
    revoked = sorted(_unused_links(user).values_list("pk", flat=True))
    StaffEnrolment.objects.filter(pk__in=revoked).update(revoked_at=now)
    return revoked


# --------------------------------------------------------------------------------------------- accounts


def staff_user_create(
    *,
    username: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    actor: User | None = None,
    system_actor: str = "",
) -> User:
    """A new member of staff: active, no usable password, no authenticator (the module docstring says why)."""
    staff_actor_check(actor, system_actor, CREATE_STAFF, gettext_noop("create members of staff"))
    user = User(
        username=username.strip(), email=email.strip(), first_name=first_name.strip(), last_name=last_name.strip()
    )
    user.set_unusable_password()
    try:
        user.full_clean(exclude=["password"], validate_unique=False)
    except django_exceptions.ValidationError as error:
        field, problems = next(iter(error.message_dict.items()))
        raise ValidationError(
            gettext("%(field)s: %(problems)s") % {"field": field, "problems": " ".join(problems)}, field=field
        ) from error
    with transaction.atomic():
        if User.objects.filter(username__iexact=user.username).exists():
            raise ConflictError(
                gettext("a user named %(username)s already exists") % {"username": user.username},
                field="username",
            )
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError as error:  # created at the same moment by someone else
            raise ConflictError(
                gettext("a user named %(username)s already exists") % {"username": user.username},
                field="username",
            ) from error
        _audit(STAFF_CREATE, user, actor, system_actor, to_state="active", email=user.email)
    return user


def staff_user_deactivate(*, user_id: int, actor: User | None = None, system_actor: str = "") -> bool:
    """Refuse the user's sign-ins and end their sessions; revoke their unused links. False if already inactive."""
    staff_actor_check(actor, system_actor, ADMINISTER_STAFF, gettext_noop("deactivate members of staff"))
    with transaction.atomic():
        user = staff_target_lock(user_id, actor, gettext_noop("deactivate"))
        if not user.is_active:
            return False
        user.is_active = False
        user.save(update_fields=["is_active"])
        revoked = _revoke_unused(user, timezone.now())
        _audit(
            STAFF_DEACTIVATE,
            user,
            actor,
            system_actor,
            from_state="active",
            to_state="inactive",
            revoked_links=revoked,
        )
    return True


def staff_user_reactivate(*, user_id: int, actor: User | None = None, system_actor: str = "") -> bool:
    """Let a deactivated user sign in again, with the password and authenticator they had. False if active."""
    staff_actor_check(actor, system_actor, ADMINISTER_STAFF, gettext_noop("reactivate members of staff"))
    with transaction.atomic():
        user = staff_target_lock(user_id, actor, gettext_noop("reactivate"))
        if user.is_active:
            return False
        user.is_active = True
        user.save(update_fields=["is_active"])
        _audit(STAFF_REACTIVATE, user, actor, system_actor, from_state="inactive", to_state="active")
    return True


def staff_user_is_enrolled(user: User) -> bool:
    return user.has_usable_password() and TOTPDevice.objects.filter(user=user, confirmed=True).exists()


# ------------------------------------------------------------------------------------------------ links


def enrolment_issue(*, user_id: int, actor: User | None = None, system_actor: str = "") -> IssuedEnrolment:
    """A new one-time link for the user, good for WORKOUT_ENROLMENT_HOURS; their earlier unused links are revoked."""
    staff_actor_check(actor, system_actor, ADMINISTER_STAFF, gettext_noop("issue enrolment links"))
    hours = float(settings.WORKOUT_ENROLMENT_HOURS)
    if not hours > 0:
        raise ValidationError(
            gettext("WORKOUT_ENROLMENT_HOURS must be positive, not %(hours)s") % {"hours": hours},
            field="WORKOUT_ENROLMENT_HOURS",
        )
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        user = staff_target_lock(user_id, actor, gettext_noop("issue an enrolment link to"))
        if not user.is_active:
            raise ValidationError(
                gettext("%(user)s is deactivated: reactivate them first") % {"user": user.get_username()},
                user_id=user_id,
            )
        now = timezone.now()
        revoked = _revoke_unused(user, now)
        enrolment = StaffEnrolment.objects.create(
            user=user,
            digest=enrolment_digest(token),
            issued_by=actor,
            issued_by_system="" if actor is not None else system_actor[:64],
            issued_at=now,
            expires_at=now + timedelta(hours=hours),
        )
        _audit(
            STAFF_ENROLMENT_ISSUE,
            user,
            actor,
            system_actor,
            enrolment_id=enrolment.pk,
            expires_at=enrolment.expires_at,
            revoked_links=revoked,
        )
    return IssuedEnrolment(enrolment=enrolment, token=token)


def enrolment_find(token: str) -> StaffEnrolment | None:
    """The link this token opens, if it is still good (unused, not revoked, not expired, its user active)."""
    if not token or len(token) > 100:
        return None
    enrolment = StaffEnrolment.objects.select_related("user").filter(digest=enrolment_digest(token)).first()
    if enrolment is None or not _still_good(enrolment):
        return None
    return enrolment


def _still_good(enrolment: StaffEnrolment) -> bool:
    return (
        enrolment.used_at is None
        and enrolment.revoked_at is None
        and enrolment.expires_at > timezone.now()
        and enrolment.user.is_active
    )


@dataclass(frozen=True)
class EnrolmentKey:
    """A fresh authenticator secret for the enrolment page: `hex` as django-otp stores it, `base32` as people type
    it into an app, and `signed` for the form to post back (signed with the link's digest, so a key is one this
    site made for this link: nobody enrols a key of their choosing, such as all zeros)."""

    hex: str
    signed: str

    @property
    def base32(self) -> str:
        return base64.b32encode(bytes.fromhex(self.hex)).decode()


def enrolment_key_new(token: str) -> EnrolmentKey:
    key = secrets.token_hex(_KEY_BYTES)
    return EnrolmentKey(hex=key, signed=signing.dumps(key, salt=f"{_KEY_SALT}:{enrolment_digest(token)}"))


def enrolment_key_read(token: str, signed: str) -> EnrolmentKey:
    try:
        key = signing.loads(signed, salt=f"{_KEY_SALT}:{enrolment_digest(token)}")
    except signing.BadSignature as error:
        raise ValidationError(
            gettext("the page was altered or is for another link: open the link again"), field="key"
        ) from error
    if not isinstance(key, str) or len(key) != 2 * _KEY_BYTES:
        raise ValidationError(gettext("the page was altered: open the link again"), field="key")
    return EnrolmentKey(hex=key, signed=signed)


def enrolment_redeem(*, token: str, password: str, password_again: str, signed_key: str, code: str) -> TOTPDevice:
    """Enrol the link's user: the password they chose, the authenticator whose current code they typed (replacing
    any earlier one), the link used. Returns the confirmed device (its `user` is the enrolled user)."""
    found = enrolment_find(token)
    if found is None:
        raise EnrolmentLinkInvalidError
    key = enrolment_key_read(token, signed_key)
    if password != password_again:
        raise ValidationError(gettext("the two passwords differ"), field="password_again")
    with transaction.atomic():
        # the user first, then the link: the order enrolment_issue takes them in
        user = User.objects.select_for_update().get(pk=found.user_id)
        enrolment = StaffEnrolment.objects.select_for_update().select_related("user").get(pk=found.pk)
        enrolment.user = user
        if not _still_good(enrolment):  # used, revoked or expired while the page was open
            raise EnrolmentLinkInvalidError
        try:
            password_validation.validate_password(password, user)
        except django_exceptions.ValidationError as error:
            raise ValidationError(" ".join(error.messages), field="password") from error
        replaced = TOTPDevice.objects.filter(user=user).delete()[0]
        device = TOTPDevice.objects.create(user=user, name="authenticator", key=key.hex, confirmed=False)
        if not device.verify_token(code.strip()):
            # raising rolls back the device and everything above: the link stays good for another try
            raise ValidationError(
                gettext("that code is not the authenticator's current one: type the code it shows now"), field="code"
            )
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        user.set_password(password)
        user.save(update_fields=["password"])
        now = timezone.now()
        enrolment.used_at = now
        enrolment.save(update_fields=["used_at"])
        _revoke_unused(user, now)  # none should be left (a new link revokes the older); kept in step all the same
        _audit(STAFF_ENROL, user, user, "", to_state="enrolled", enrolment_id=enrolment.pk, devices_replaced=replaced)
    return device

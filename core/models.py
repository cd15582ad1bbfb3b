"""What every app shares in the database: the audit trail, the API's idempotency records, operations and staff
enrolments. (The API's tokens belong to clients: accounts/models.py.)

`AuditEvent` rows are written only by `core.audit` (read its docstring for the hash chain). The table is
append-only: on PostgreSQL a trigger refuses UPDATE and DELETE; the unique `previous_hash` means two events
can never follow the same predecessor (no fork in the chain).
"""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    """One transition or decision, chained to the one before it by SHA-256.

    `account_id` is a plain integer, not a foreign key: the trail must outlive anything it mentions.
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    system_actor = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.BigIntegerField()
    account_id = models.BigIntegerField(null=True, blank=True)
    from_state = models.CharField(max_length=64, blank=True)
    to_state = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    previous_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="auditevent_object_idx"),
            models.Index(fields=["account_id"], name="auditevent_account_idx"),
            models.Index(fields=["action"], name="auditevent_action_idx"),
            models.Index(fields=["created_at"], name="auditevent_created_at_idx"),
            # actor: indexed by its foreign key.
        ]
        constraints = [
            models.CheckConstraint(condition=Q(sequence__gte=1), name="auditevent_sequence_gte_1"),
            models.CheckConstraint(
                condition=(Q(actor__isnull=False) & Q(system_actor="")) | (Q(actor__isnull=True) & ~Q(system_actor="")),
                name="auditevent_actor_xor_system_actor",
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.object_type}:{self.object_id}"


# --------------------------------------------------------------------------------------------- the client API


class IdempotencyRecord(models.Model):
    """The first response to a state-changing request with an Idempotency-Key (core/api/idempotency.py).

    Inserted before the request's effect, in the same transaction, under the unique (scope, key): a second request
    with the key waits for the first to commit, then replays its response (or is refused if its body differs)."""

    scope = models.CharField(max_length=64)  # whose key: "client:<id>" or "user:<id>"
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)  # SHA-256 of the method, path and body
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    response_status = models.PositiveSmallIntegerField(default=0)
    response_body = models.TextField(blank=True, default="")  # as rendered: a replay is byte for byte the same
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_once_per_scope_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_at_idx")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}: {self.response_status}"


# ------------------------------------------------------------------------------------------------ operations


class OperationChannel(models.TextChoices):
    COMMAND = "command", _("A management command")
    API = "api", _("The operations API")


class Operation(models.Model):
    """One run of an operation on the book or the configuration from outside the workflow's own actions: a
    management command (`import_book`, `shock`, `rules_load`...) or a call of the operations API. It is the
    subject of the audit event the run writes ("operation.<name>"), which names who ran it (a user, or the
    operating-system user of a command run without `--actor`), with what arguments and what came of it."""

    name = models.CharField(max_length=100)  # the command's or the endpoint's name: "import_book", "book_import"
    channel = models.CharField(max_length=7, choices=OperationChannel.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    system_actor = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField()
    arguments = models.JSONField(default=dict, blank=True)
    outcome = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(channel__in=OperationChannel.values), name="operation_channel_valid"),
            models.CheckConstraint(
                condition=(Q(actor__isnull=False) & Q(system_actor="")) | (Q(actor__isnull=True) & ~Q(system_actor="")),
                name="operation_actor_xor_system_actor",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.name} at {self.started_at:%Y-%m-%d %H:%M:%S}"


# ----------------------------------------------------------------------------------------------- enrolment


class StaffEnrolment(models.Model):
    """A one-time link an administrator issues so that a member of staff sets their password and their
    authenticator (second factor) and only then can sign in. Only the SHA-256 of the link's token is stored;
    the link is shown once, to the administrator who issued it. A link is good once, until it expires."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="enrolments")
    digest = models.CharField(max_length=64, unique=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    issued_by_system = models.CharField(max_length=64, blank=True)  # a command run without --actor
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)  # a newer link was issued, or the user left

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("issued_at")), name="staffenrolment_expires_later"
            ),
            models.CheckConstraint(
                condition=~Q(issued_by=models.F("user")), name="staffenrolment_not_issued_to_oneself"
            ),
        ]

    def __str__(self) -> str:
        return f"enrolment of {self.user_id} issued {self.issued_at:%Y-%m-%d %H:%M}"


class UserPreference(models.Model):
    """What a member of staff chose for themselves: the language of the pages (one of settings.LANGUAGES). Set by
    core/preferences.py, audited; read once at sign-in into the session (no query per page)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    language = models.CharField(max_length=16)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language}"

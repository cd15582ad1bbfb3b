"""What every app shares in the database: the audit trail.

`AuditEvent` rows are written only by `core.audit` (read its docstring for the hash chain). The table is
append-only: on PostgreSQL a trigger refuses UPDATE and DELETE; the unique `previous_hash` means two events
can never follow the same predecessor (no fork in the chain).
"""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import Q

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

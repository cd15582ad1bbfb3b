"""Rule sets and rules: the credit policy as data that credit officers write (docs/rules.md).

A RuleSet is DRAFT (editable), PUBLISHED (in force; exactly one at a time; never changes again) or RETIRED (was
published). To change the policy, clone the published set into a new draft, edit, dry-run, publish: publishing
retires the set in force, in one transaction, and is an audit event. The services in rules/services.py are
the only writers; they refuse to change a set that is not a draft.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class RuleSetStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    RETIRED = "retired", _("Retired")


class Action(models.TextChoices):
    EXTEND_TERM = "extend_term", _("Extend the term")
    CHANGE_RATE = "change_rate", _("Change the rate")
    GRACE_PERIOD = "grace_period", _("Grace period")
    DEMAND_COLLATERAL = "demand_collateral", _("Demand collateral")
    REDUCE_POSITION = "reduce_position", _("Reduce positions")
    HAIRCUT_PRINCIPAL = "haircut_principal", _("Haircut the principal")
    LIQUIDATE = "liquidate", _("Liquidate")
    ESCALATE_TO_SENIOR = "escalate_to_senior", _("Escalate to a senior officer")


class RuleSet(models.Model):
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(unique=True)  # 1, 2, 3... in creation order; proposals record it
    status = models.CharField(max_length=9, choices=RuleSetStatus.choices, default=RuleSetStatus.DRAFT)
    description = models.TextField(blank=True, default="")
    cloned_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Everyone who added, changed or deleted a rule of this set while it was a draft (its author is created_by):
    # none of them may publish it, nor approve what it proposes.
    editors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status=RuleSetStatus.PUBLISHED), name="ruleset_one_published"
            ),
            models.CheckConstraint(condition=Q(status__in=RuleSetStatus.values), name="ruleset_status_valid"),
            models.CheckConstraint(
                condition=Q(status=RuleSetStatus.DRAFT) | Q(published_at__isnull=False),
                name="ruleset_published_has_time",
            ),
        ]
        permissions = [("publish_ruleset", "Can publish a rule set (senior credit officer)")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.status})"


class Rule(models.Model):
    rule_set = models.ForeignKey(RuleSet, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    priority = models.IntegerField()  # lower runs first
    condition = models.TextField()  # an expression over the facts (rules/schema.py), boolean
    action = models.CharField(max_length=18, choices=Action.choices)
    # Parameter name -> expression text (numbers) or a literal choice; rules/actions.py lists each action's.
    parameters = models.JSONField(default=dict, blank=True)
    # Fired actions with the same package make one proposal (e.g. collateral demand plus reduction).
    package = models.CharField(max_length=100)
    stop_processing = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule_set", "name"], name="rule_name_unique_in_set"),
            models.CheckConstraint(condition=Q(action__in=Action.values), name="rule_action_valid"),
        ]
        ordering = ["priority", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.action})"

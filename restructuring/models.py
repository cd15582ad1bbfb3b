"""Cases: one distress episode of one margin account, as a state machine (django-fsm-2).

The state field is protected: it changes only through the transition methods below, which check their
source state and conditions and set fields, nothing else. The services in restructuring/services/ call
them, lock what they change, write the audit event in the same transaction and schedule side effects on
commit. The state graph in docs/case-states.md is generated from these transitions (a test keeps it so).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, post_transition, transition

from accounts.models import MarginAccount, money_field


class CaseState(models.TextChoices):
    WARNING = "warning", _("Warning")
    MARGIN_CALL = "margin_call", _("Margin call")
    PROPOSED = "proposed", _("Proposed")
    OFFERED = "offered", _("Offered")
    ACCEPTED = "accepted", _("Accepted")
    RESTRUCTURED = "restructured", _("Restructured")
    CURED = "cured", _("Cured")
    LIQUIDATING = "liquidating", _("Liquidating")
    LIQUIDATED = "liquidated", _("Liquidated")
    WRITTEN_OFF = "written_off", _("Written off")
    DEFAULTED = "defaulted", _("Defaulted")
    CLOSED = "closed", _("Closed")


# A case is open until it ends: cured, fully liquidated (debt covered), written off or closed.
CLOSED_STATES = (CaseState.CURED, CaseState.LIQUIDATED, CaseState.WRITTEN_OFF, CaseState.CLOSED)
OPEN_STATES = tuple(s for s in CaseState if s not in CLOSED_STATES)
# The sweep may cure a case while the client has not yet committed to anything.
CURABLE_STATES = (CaseState.WARNING, CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED)


class CallBasis(models.TextChoices):
    INITIAL = "initial", _("Shortfall to the initial requirement")
    MAINTENANCE = "maintenance", _("Shortfall to the maintenance requirement")


class StateClock(models.Model):
    """When the state last changed: what the SLA timers (restructuring/sla.py) count from. Every transition sets
    it in memory (the post_transition receiver below), and a save that writes the state writes it too; the bulk
    writers list it beside "state"."""

    state_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def save(self, *args: object, **kwargs: object) -> None:
        fields = kwargs.get("update_fields")
        if fields is not None and "state" in fields and "state_changed_at" not in fields:  # type: ignore[operator]
            kwargs["update_fields"] = [*fields, "state_changed_at"]  # type: ignore[misc]
        super().save(*args, **kwargs)  # type: ignore[arg-type]


@receiver(post_transition)
def _state_clock(sender: type, instance: models.Model, **_: object) -> None:
    if isinstance(instance, StateClock):
        instance.state_changed_at = timezone.now()


class Team(models.Model):
    """A desk of officers under a senior, to whom its SLA breaches escalate. A case's team is its assignee's,
    set with the assignee (restructuring/services/assignment.py); an unassigned case has none."""

    name = models.CharField(max_length=100, unique=True)
    senior = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="teams_led"
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="TeamMembership", related_name="teams")
    # Hours by SLA clock (restructuring/sla.py CLOCKS) where this team's target differs from WORKOUT_SLA_HOURS.
    sla_hours = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    """An officer's place on one team (one each), with what the auto-assignment needs to know of them."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_membership")
    # The most urgency-weighted load of open cases auto-assignment gives them; None: WORKOUT_ASSIGN_CAPACITY.
    capacity = models.PositiveIntegerField(null=True, blank=True)
    on_leave = models.BooleanField(default=False)  # takes no new cases; set by officer_leave_start

    def __str__(self) -> str:
        return f"{self.user_id} in {self.team_id}"


class Case(ConcurrentTransitionMixin, StateClock, models.Model):
    account = models.ForeignKey(MarginAccount, on_delete=models.PROTECT, related_name="cases")
    state = FSMField(default=CaseState.WARNING, choices=CaseState.choices, protected=True)
    # Who works the case, and their team (restructuring/services/assignment.py); null: unassigned.
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assigned_cases"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="cases")
    assigned_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # The margin call: how much the client must bring, on which basis, by when.
    call_amount = money_field(null=True, blank=True)
    call_basis = models.CharField(max_length=11, choices=CallBasis.choices, blank=True, default="")
    called_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    # The risk figures the case was last moved on (margin ratio, band), for the queue and the audit.
    margin_ratio = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    band = models.CharField(max_length=11, blank=True, default="")
    written_off_amount = money_field(null=True, blank=True)
    # The fact row the rules last saw for this case (rules/schema.py) and when: what a backtest replays.
    facts = models.JSONField(default=dict, blank=True)
    facts_at = models.DateTimeField(null=True, blank=True)
    # A broken promise to pay (PromiseToPay) puts the case back on the officers' desk from this moment, whatever
    # its state: the state machine does not move (the promise was never a state), but the case waits for staff
    # again until an officer logs a contact or takes a new promise, which clears it. None: nothing to follow up.
    follow_up_since = models.DateTimeField(null=True, blank=True)
    # The latest feasibility report's figures that the queue shows, sorts and filters on, kept on the case by the
    # service that stores reports (restructuring/services/feasibility.py, in the same transaction, in bulk), so the
    # queue reads no report: sorting 10,000 open cases by expected loss is then an index scan, not a subquery per
    # case. `report_at` is the report's created_at; null (and the figures empty) before the first report.
    report_at = models.DateTimeField(null=True, blank=True)
    report_expected_loss = money_field(null=True, blank=True)
    report_recovery_expected = money_field(null=True, blank=True)
    report_recommended = models.CharField(max_length=100, blank=True, default="")  # "": liquidate (or no report)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(state__in=OPEN_STATES), name="case_one_open_per_account"
            ),
            models.CheckConstraint(condition=Q(state__in=CaseState.values), name="case_state_valid"),
            models.CheckConstraint(
                condition=Q(closed_at__isnull=True) | Q(state__in=CLOSED_STATES), name="case_closed_at_only_closed"
            ),
            models.CheckConstraint(
                condition=Q(call_amount__isnull=True) | Q(call_amount__gte=0), name="case_call_amount_gte_0"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "deadline"], name="case_state_deadline_idx"),
            models.Index(fields=["assignee", "state"], name="case_assignee_state_idx"),
            # The queue's orders over the open cases (restructuring/selectors/queue.py), so that a page of them is
            # read in order and cut, not all of them sorted: urgency (the deadline first; the rest of the key is
            # sorted within equal deadlines) and time in state. bench/desk.py checks them. (Expected loss, sorted
            # descending with empty figures last, would need NULLS LAST in the index, which SQLite refuses; its
            # sort over 10,000 open cases reads the case table alone.)
            models.Index(fields=["deadline", "id"], condition=Q(state__in=OPEN_STATES), name="case_open_deadline_idx"),
            models.Index(
                Coalesce("state_changed_at", "opened_at"),
                "id",
                condition=Q(state__in=OPEN_STATES),
                name="case_open_in_state_idx",
            ),
        ]
        permissions = [
            ("liquidate_case", "Can send a case to liquidation"),
            ("book_liquidation", "Can book liquidation fills"),
            ("assign_case", "Can reassign cases and send officers on leave (senior credit officer)"),
        ]

    def __str__(self) -> str:
        return f"case {self.pk} ({self.state}) on {self.account_id}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    # --- the sweep's transitions

    @transition(field=state, source=CaseState.WARNING, target=CaseState.MARGIN_CALL)
    def issue_margin_call(self, *, amount: Decimal, basis: CallBasis, at: datetime, deadline: datetime) -> None:
        self.call_amount = amount
        self.call_basis = basis
        self.called_at = at
        self.deadline = deadline

    @transition(field=state, source=list(CURABLE_STATES), target=CaseState.CURED)
    def cure(self, *, at: datetime) -> None:
        self.closed_at = at

    # --- negotiation (driven by rules, officers and clients in later services)

    @transition(field=state, source=CaseState.MARGIN_CALL, target=CaseState.PROPOSED)
    def propose(self) -> None:
        pass

    @transition(field=state, source=CaseState.PROPOSED, target=CaseState.MARGIN_CALL)
    def reject(self) -> None:
        pass

    @transition(field=state, source=CaseState.PROPOSED, target=CaseState.OFFERED)
    def offer(self) -> None:
        pass

    @transition(field=state, source=CaseState.OFFERED, target=CaseState.ACCEPTED)
    def accept(self) -> None:
        pass

    @transition(field=state, source=CaseState.OFFERED, target=CaseState.MARGIN_CALL)
    def decline(self) -> None:
        pass

    @transition(field=state, source=CaseState.OFFERED, target=CaseState.MARGIN_CALL)
    def expire_offer(self) -> None:
        pass

    # A declined or expired offer whose case still has live proposals (pending approval or approved): they stay
    # in play, and the case is back among its proposals rather than in margin call.
    @transition(field=state, source=CaseState.OFFERED, target=CaseState.PROPOSED)
    def return_to_proposals(self) -> None:
        pass

    @transition(field=state, source=CaseState.OFFERED, target=CaseState.PROPOSED)
    def counter(self) -> None:
        pass

    @transition(field=state, source=CaseState.ACCEPTED, target=CaseState.RESTRUCTURED)
    def execute(self) -> None:
        pass

    @transition(field=state, source=CaseState.RESTRUCTURED, target=CaseState.CLOSED)
    def close(self, *, at: datetime) -> None:
        self.closed_at = at

    @transition(field=state, source=CaseState.RESTRUCTURED, target=CaseState.DEFAULTED)
    def default(self) -> None:
        pass

    # --- the liquidation path

    @transition(
        field=state,
        source=[CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.DEFAULTED],
        target=CaseState.LIQUIDATING,
        permission="restructuring.liquidate_case",  # checked when an officer acts; the deadline task is the system
    )
    def liquidate(self) -> None:
        pass

    @transition(field=state, source=CaseState.LIQUIDATING, target=CaseState.LIQUIDATED)
    def complete_liquidation(self, *, at: datetime) -> None:
        self.closed_at = at

    @transition(field=state, source=CaseState.LIQUIDATED, target=CaseState.WRITTEN_OFF)
    def write_off(self, *, amount: Decimal, at: datetime) -> None:
        """The proceeds did not cover the debt: the shortfall is bad debt (booked by the same service)."""
        self.written_off_amount = amount
        self.closed_at = at


class LiquidationStatus(models.TextChoices):
    PLANNED = "planned", _("Planned: orders issued")
    BOOKED = "booked", _("Booked: fills applied to the book")


class LiquidationPlan(models.Model):
    """The instructions for liquidating a case's account. This system does not trade: it issues the orders
    and books the fills it is given. The plan records the inputs and model version it was computed with."""

    case = models.OneToOneField(Case, on_delete=models.PROTECT, related_name="liquidation_plan")
    created_at = models.DateTimeField()
    model_version = models.CharField(max_length=32)
    parameters = models.JSONField(default=dict)
    inputs = models.JSONField(default=dict)  # the holdings as planned: quantities, prices, volumes, volatilities
    days = models.PositiveIntegerField()
    expected_proceeds = money_field()
    impact_cost = money_field()
    status = models.CharField(max_length=7, choices=LiquidationStatus.choices, default=LiquidationStatus.PLANNED)
    booked_at = models.DateTimeField(null=True, blank=True)
    cash_realised = money_field(null=True, blank=True)  # what the fills brought into the account's cash
    debt_repaid = money_field(null=True, blank=True)
    shortfall = money_field(null=True, blank=True)  # debt left with nothing to sell: written off

    def __str__(self) -> str:
        return f"liquidation plan of case {self.case_id} ({self.status})"


class LiquidationOrder(models.Model):
    plan = models.ForeignKey(LiquidationPlan, on_delete=models.CASCADE, related_name="orders")
    sequence = models.PositiveIntegerField()  # execution order
    instrument = models.ForeignKey("accounts.Instrument", on_delete=models.PROTECT, related_name="+")
    position_id = models.BigIntegerField()  # the position closed (it may be gone once fully closed)
    day = models.PositiveIntegerField()
    quantity = models.DecimalField(max_digits=28, decimal_places=8)  # position units, signed: > 0 sold
    expected_price = models.DecimalField(max_digits=28, decimal_places=8)
    expected_proceeds = money_field()
    filled_quantity = models.DecimalField(max_digits=28, decimal_places=8, null=True, blank=True)
    fill_price = models.DecimalField(max_digits=28, decimal_places=8, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["plan", "sequence"], name="liquidationorder_sequence_unique"),
            models.CheckConstraint(
                condition=Q(fill_price__isnull=True) | Q(fill_price__gte=0), name="liquidationorder_fill_price_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.sequence} of plan {self.plan_id}: {self.quantity} of {self.instrument_id}"


# --------------------------------------------------------------------------------------------- notifications


class NotificationKind(models.TextChoices):
    MARGIN_CALL = "margin_call", _("Margin call")
    DEADLINE_REMINDER = "deadline_reminder", _("Margin call deadline reminder")
    OFFER = "offer", _("Offer of restructured terms")
    COUNTER_RECEIVED = "counter_received", _("Counter-offer received")
    ACCEPTED = "accepted", _("Offer accepted")
    EXECUTED = "executed", _("Restructuring executed")
    INSTALLMENT_DUE = "installment_due", _("Installment due")
    MISSED_PAYMENT = "missed_payment", _("Missed payment")
    PROMISE_KEPT = "promise_kept", _("Promise to pay kept")
    PROMISE_BROKEN = "promise_broken", _("Promise to pay broken")
    LIQUIDATION = "liquidation", _("Liquidation started")
    CURED = "cured", _("Outcome: cured")
    LIQUIDATED = "liquidated", _("Outcome: liquidated")
    WRITTEN_OFF = "written_off", _("Outcome: written off")
    # To staff, not the client: a case waited past its SLA target; sent to the team's senior by email.
    SLA_BREACH = "sla_breach", _("Escalation: SLA target breached")
    # To the client by email: one of its webhook endpoints was disabled after its failures (on the case whose
    # delivery failed last). Not itself delivered to webhooks (restructuring/events.py).
    WEBHOOK_DISABLED = "webhook_disabled", _("Webhook endpoint disabled")


# What the client is told of (every kind but the staff's escalation): each has a template per templated channel and
# locale (restructuring/message_catalogue.py).
CLIENT_NOTIFICATION_KINDS = tuple(kind for kind in NotificationKind if kind != NotificationKind.SLA_BREACH)


class NotificationChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    WEBHOOK = "webhook", _("Webhook")
    SMS = "sms", _("SMS")
    LETTER = "letter", _("Letter")


# The channels whose messages are written by people, from templates (a webhook carries the event's JSON payload).
TEMPLATED_CHANNELS = (NotificationChannel.EMAIL, NotificationChannel.SMS, NotificationChannel.LETTER)


class NotificationStatus(models.TextChoices):
    PENDING = "pending", _("Pending: to be sent (or being sent)")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed: gave up after the last attempt")
    BOUNCED = "bounced", _("Bounced: sent, then reported undelivered")


class MessageTemplateStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    IN_REVIEW = "in_review", _("In review")
    PUBLISHED = "published", _("Published: in use")
    RETIRED = "retired", _("Retired: replaced by a later version")


class MessageTemplate(models.Model):
    """One version of the text of one kind of client message on one channel in one locale
    (restructuring/services/message_templates.py). Drafts are edited; a draft is submitted for review and published
    by a second person (never one of its authors); publishing retires the version in use. Published and retired
    versions never change: every message records the version it was rendered from (Notification.template).

    `subject` is an email's subject or a letter's heading (an SMS has none); `body` is plain text for email and SMS,
    an HTML fragment for a letter (autoescaped). Both are Django template source, rendered by the sandboxed engine
    of core/message_templates.py on plain values only."""

    kind = models.CharField(max_length=17, choices=NotificationKind.choices)
    channel = models.CharField(max_length=7, choices=NotificationChannel.choices)
    locale = models.CharField(max_length=5)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=9, choices=MessageTemplateStatus.choices, default=MessageTemplateStatus.DRAFT)
    subject = models.CharField(max_length=300, blank=True, default="")
    body = models.TextField()
    # The version this one was drafted from (None: the first, shipped with the code).
    based_on = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Who wrote it: its creator and everyone who edited the draft (none for the defaults shipped with the code).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    editors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Who reviewed and published it, and when (None for the shipped defaults); a rejected review's reason.
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "channel", "locale", "version"], name="message_template_version"),
            models.UniqueConstraint(
                fields=["kind", "channel", "locale"],
                condition=Q(status="published"),
                name="message_template_one_published",
            ),
            models.UniqueConstraint(
                fields=["kind", "channel", "locale"],
                condition=Q(status__in=["draft", "in_review"]),
                name="message_template_one_draft",
            ),
            models.CheckConstraint(condition=Q(kind__in=NotificationKind.values), name="message_template_kind_valid"),
            models.CheckConstraint(
                condition=Q(channel__in=[c.value for c in TEMPLATED_CHANNELS]), name="message_template_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=MessageTemplateStatus.values), name="message_template_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(published_at__isnull=True) | Q(status__in=["published", "retired"]),
                name="message_template_published_at_published",
            ),
        ]
        permissions = [("publish_messagetemplate", "Can review and publish message templates (not one's own)")]

    def __str__(self) -> str:
        return f"{self.kind} {self.channel} {self.locale} v{self.version} ({self.status})"


class Notification(models.Model):
    """The outbox: one message to one client channel, written in the transaction of the transition it tells
    of (so a rollback leaves none) and sent after commit by a task, or by the drain beat when the broker was
    down. `next_attempt_at` is when the row may next be claimed: a sender pushes it forward by a lease while
    it sends, and by the backoff after a failure. See restructuring/services/notifications.py.

    It is also the communication log: a templated message (email, SMS, letter) keeps what the client was sent,
    rendered when it was enqueued (`subject`, `body`), the template version it came from, and for a letter the
    stored PDF and its SHA-256 (restructuring/services/messages.py)."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notifications")
    kind = models.CharField(max_length=17, choices=NotificationKind.choices)
    channel = models.CharField(max_length=7, choices=NotificationChannel.choices)
    # The email address, phone number (E.164), postal address or webhook URL, as the client had it when the
    # notification was enqueued.
    recipient = models.CharField(max_length=2000)
    # The endpoint a webhook row goes to (one row per subscribed endpoint); null for the other channels, and for
    # the webhook rows of a client whose webhook was removed before endpoints existed (accounts/migrations/0008).
    webhook_endpoint = models.ForeignKey(
        "accounts.WebhookEndpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notifications",
    )
    # Distinguishes two events of one kind on one case (e.g. the deadline a reminder is for); "" when a kind
    # happens at most once per case.
    dedupe_key = models.CharField(max_length=64, blank=True, default="")
    payload = models.JSONField(default=dict)  # what the message says; JSON-native (amounts as strings)
    status = models.CharField(max_length=7, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    # The rendered message (templated channels; empty for a webhook, whose body is the payload).
    template = models.ForeignKey(
        MessageTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    locale = models.CharField(max_length=5, blank=True, default="")
    subject = models.CharField(max_length=300, blank=True, default="")
    body = models.TextField(blank=True, default="")
    # Held for the client's quiet hours until then (never a legally required notice); None: not held.
    deferred_until = models.DateTimeField(null=True, blank=True)
    # The provider's id of the message (an SMS's), to match its delivery reports; "" when none.
    provider_id = models.CharField(max_length=64, blank=True, default="")
    # A letter: the PDF as stored (Django's storage API) and its SHA-256, also in the audit event of its sending.
    letter_pdf = models.FileField(upload_to="letters/", max_length=300, blank=True, default="")
    letter_sha256 = models.CharField(max_length=64, blank=True, default="")
    bounced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Once per event and channel; for webhooks, once per event and endpoint. Two partial constraints
            # rather than one with NULLS NOT DISTINCT, which SQLite (the demo's database) does not have.
            models.UniqueConstraint(
                fields=["case", "kind", "channel", "dedupe_key"],
                condition=Q(webhook_endpoint__isnull=True),
                name="notification_once_per_event_channel",
            ),
            models.UniqueConstraint(
                fields=["case", "kind", "dedupe_key", "webhook_endpoint"],
                condition=Q(webhook_endpoint__isnull=False),
                name="notification_once_per_endpoint",
            ),
            models.CheckConstraint(condition=Q(kind__in=NotificationKind.values), name="notification_kind_valid"),
            models.CheckConstraint(
                condition=Q(channel__in=NotificationChannel.values), name="notification_channel_valid"
            ),
            models.CheckConstraint(condition=Q(status__in=NotificationStatus.values), name="notification_status_valid"),
            models.CheckConstraint(
                condition=Q(sent_at__isnull=True) | Q(status__in=[NotificationStatus.SENT, NotificationStatus.BOUNCED]),
                name="notification_sent_at_sent",
            ),
            models.CheckConstraint(
                condition=Q(bounced_at__isnull=True) | Q(status=NotificationStatus.BOUNCED),
                name="notification_bounced_at_bounced",
            ),
        ]
        indexes = [
            # The drain's claim: pending rows whose time has come, oldest first.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status=NotificationStatus.PENDING),
                name="notification_pending_due_idx",
            ),
            # A provider's delivery report finds its message.
            models.Index(fields=["provider_id"], condition=~Q(provider_id=""), name="notification_provider_id_idx"),
        ]
        permissions = [("redeliver_notification", "Can deliver a webhook notification again")]

    def __str__(self) -> str:
        return f"{self.kind} by {self.channel} for case {self.case_id} ({self.status})"


class WebhookDelivery(models.Model):
    """One attempt to post a webhook notification to its endpoint: when, how long, and what came back (the
    status code, or the error when there was no answer). The endpoint's delivery log, read by its client
    (GET /api/v1/webhooks/{id}/deliveries/) and by the officers on the case page. Written by the sender after
    each attempt, in a transaction of its own (restructuring/services/notifications.py)."""

    endpoint = models.ForeignKey("accounts.WebhookEndpoint", on_delete=models.PROTECT, related_name="deliveries")
    notification = models.ForeignKey(Notification, on_delete=models.PROTECT, related_name="deliveries")
    attempted_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)  # null: no HTTP answer
    succeeded = models.BooleanField()
    error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(succeeded=False) | (Q(status_code__gte=200) & Q(status_code__lt=300)),
                name="webhookdelivery_success_is_2xx",
            )
        ]
        indexes = [
            models.Index(fields=["endpoint", "-attempted_at"], name="webhookdelivery_endpoint_idx"),
            models.Index(fields=["notification", "attempted_at"], name="webhookdelivery_notice_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery of notification {self.notification_id} to endpoint {self.endpoint_id}"


class FeasibilityTrigger(models.TextChoices):
    MARGIN_CALL = "margin_call", _("The case entered margin call")
    ON_DEMAND = "on_demand", _("Asked for by an officer or a command")


class FeasibilityReport(models.Model):
    """One feasibility computation of a case (restructuring/feasibility.py): everything needed to reproduce it
    (seeds, parameters, inputs, model version) and what it found, with the Monte Carlo standard errors.

    `results` holds every figure as a string, rounded (money to the account currency's quantum, ratios to six
    places): recomputing from `inputs` must give the same strings (`manage.py feasibility_recompute`). The
    columns repeat the figures the queue, the rules and the UI filter and sort on."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="feasibility_reports")
    # Makes the task idempotent: a margin call is computed once per call ("margin_call:<called_at>").
    key = models.CharField(max_length=100)
    trigger = models.CharField(max_length=11, choices=FeasibilityTrigger.choices)
    created_at = models.DateTimeField()
    as_of = models.DateTimeField()  # the market the figures are on: the prices as of the latest sweep
    sweep_id = models.BigIntegerField(null=True, blank=True)
    model_version = models.CharField(max_length=32)
    market_seed = models.BigIntegerField()
    case_seed = models.BigIntegerField()
    parameters = models.JSONField(default=dict)
    inputs = models.JSONField(default=dict)
    results = models.JSONField(default=dict)
    duration_ms = models.FloatField(default=0.0)
    debt = money_field()
    recovery_expected = money_field()
    recovery_p5 = money_field()
    expected_loss = money_field()
    loss_given_default = models.DecimalField(max_digits=12, decimal_places=6)
    loss_capacity_pct = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    liquidation_value = money_field()  # what liquidating now brings the lender: E[min(debt, recovery)]
    recommended = models.CharField(max_length=100, blank=True, default="")  # a candidate's name; "": liquidate
    recommended_advantage = money_field(null=True, blank=True)
    # What the rules read of the report besides the figures above (restructuring/selectors.rule_facts_load),
    # kept as columns so that reading the facts of many cases never decodes the inputs.
    liquidation_days = models.PositiveIntegerField(null=True, blank=True)
    portfolio_volatility = models.FloatField(null=True, blank=True)
    concentration_top1 = models.FloatField(null=True, blank=True)
    position_count = models.PositiveIntegerField(default=0)
    # The positions by gross notional at the report's prices, largest first: [[position id, is long], ...]
    holdings = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "key"], name="feasibility_once_per_key")]
        indexes = [models.Index(fields=["case", "-created_at"], name="feasibility_case_latest_idx")]

    def __str__(self) -> str:
        return f"feasibility {self.pk} of case {self.case_id}"


class ProposalState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PENDING_APPROVAL = "pending_approval", _("Pending approval")
    APPROVED = "approved", _("Approved")
    OFFERED = "offered", _("Offered")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    COUNTERED = "countered", _("Countered")
    EXPIRED = "expired", _("Expired")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    EXECUTED = "executed", _("Executed")


class ProposalSource(models.TextChoices):
    RULES = "rules", _("The published rules")
    OFFICER = "officer", _("A credit officer")
    CLIENT = "client", _("The client's counter-offer")


class ProposalKind(models.TextChoices):
    RESTRUCTURE = "restructure", _("Restructure")
    LIQUIDATE = "liquidate", _("Liquidate")


# A proposal still in play: it can be approved, offered or accepted.
LIVE_PROPOSAL_STATES = (
    ProposalState.DRAFT,
    ProposalState.PENDING_APPROVAL,
    ProposalState.APPROVED,
    ProposalState.OFFERED,
    ProposalState.ACCEPTED,
)


class Proposal(ConcurrentTransitionMixin, StateClock, models.Model):
    """Terms put forward for a case in one negotiation round, where they came from, why, and what they are worth.

    `terms` is restructuring.terms.Terms as JSON. Rule-made proposals record the rule set, and in `explanation`
    each rule that fired with the facts it read and their values; `facts` is the whole fact row the rules saw
    (what a backtest replays). `valuation` is the feasibility engine's figures for these terms."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="proposals")
    round = models.PositiveIntegerField(default=1)
    source = models.CharField(max_length=7, choices=ProposalSource.choices)
    # Makes creation idempotent: "rules:<feasibility report id>:<package>" for a rules evaluation.
    source_key = models.CharField(max_length=200)
    kind = models.CharField(max_length=11, choices=ProposalKind.choices, default=ProposalKind.RESTRUCTURE)
    state = FSMField(default=ProposalState.DRAFT, choices=ProposalState.choices, protected=True)
    name = models.CharField(max_length=100)  # the package that made it, or the officer's label
    terms = models.JSONField(default=dict)
    rule_set = models.ForeignKey("rules.RuleSet", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    rule_set_version = models.PositiveIntegerField(null=True, blank=True)
    explanation = models.JSONField(default=list)
    facts = models.JSONField(default=dict)
    feasibility_report = models.ForeignKey(
        FeasibilityReport, null=True, blank=True, on_delete=models.PROTECT, related_name="proposals"
    )
    valuation = models.JSONField(default=dict)
    expected_pv = money_field(null=True, blank=True)  # the lender's; what proposals are ranked by
    rank = models.PositiveIntegerField(null=True, blank=True)  # 1 = best within its round
    requires_senior = models.BooleanField(default=False)
    # Maker-checker: who drafted or last edited the terms (None: the rules or the client), and everyone who drafted
    # or edited any version of them (`editors`): none of them may approve. Every edit starts a new `version`; an
    # approval counts only for the version it was given to, even if later terms hash the same.
    made_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    editors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    version = models.PositiveIntegerField(default=1)
    terms_hash = models.CharField(max_length=64, blank=True, default="")
    # The offer: when it went out, until when it stands, and how far a counter-offer may move the terms.
    offered_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    counter_bounds = models.JSONField(default=dict, blank=True)
    countered_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="counter_proposals"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True, default="")
    # The restructuring agreement the offer was sent with (its PDF and hash), and the one the client accepted:
    # the same document, recorded at the accept (and named in the execution's audit event).
    agreement = models.ForeignKey(
        "Agreement", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    accepted_agreement = models.ForeignKey(
        "Agreement", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [
            ("draft_proposal", "Can draft and edit proposals (credit officer)"),
            ("approve_proposal", "Can approve proposals (credit officer)"),
            ("approve_senior", "Can give the senior approval (senior credit officer)"),
            ("offer_proposal", "Can send approved offers to clients"),
            ("execute_proposal", "Can execute accepted restructurings and record repayments"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["case", "source_key"], name="proposal_once_per_source"),
            models.CheckConstraint(condition=Q(state__in=ProposalState.values), name="proposal_state_valid"),
            models.CheckConstraint(condition=Q(source__in=ProposalSource.values), name="proposal_source_valid"),
        ]
        indexes = [models.Index(fields=["case", "round", "rank"], name="proposal_case_round_idx")]

    def __str__(self) -> str:
        return f"proposal {self.pk} ({self.name}) of case {self.case_id}: {self.state}"

    @transition(field=state, source=ProposalState.DRAFT, target=ProposalState.PENDING_APPROVAL)
    def submit(self) -> None:
        pass

    @transition(field=state, source=ProposalState.PENDING_APPROVAL, target=ProposalState.APPROVED)
    def approve(self) -> None:
        pass

    # Editing terms under approval (or approved) sends the proposal back to draft: approvals were of other terms.
    @transition(
        field=state, source=[ProposalState.PENDING_APPROVAL, ProposalState.APPROVED], target=ProposalState.DRAFT
    )
    def send_back(self) -> None:
        pass

    @transition(field=state, source=ProposalState.APPROVED, target=ProposalState.OFFERED)
    def offer(self) -> None:
        pass

    @transition(field=state, source=ProposalState.OFFERED, target=ProposalState.ACCEPTED)
    def accept(self) -> None:
        pass

    @transition(field=state, source=ProposalState.OFFERED, target=ProposalState.DECLINED)
    def decline(self) -> None:
        pass

    @transition(field=state, source=ProposalState.OFFERED, target=ProposalState.COUNTERED)
    def counter(self) -> None:
        pass

    @transition(field=state, source=ProposalState.OFFERED, target=ProposalState.EXPIRED)
    def expire(self) -> None:
        pass

    @transition(
        field=state,
        source=[ProposalState.DRAFT, ProposalState.PENDING_APPROVAL, ProposalState.APPROVED, ProposalState.OFFERED],
        target=ProposalState.WITHDRAWN,
    )
    def withdraw(self) -> None:
        pass

    @transition(field=state, source=ProposalState.ACCEPTED, target=ProposalState.EXECUTED)
    def execute(self) -> None:
        pass

    # A liquidation is never offered to the client: approved, it is carried out (the case goes to liquidation).
    @transition(field=state, source=ProposalState.APPROVED, target=ProposalState.EXECUTED)
    def carry_out_liquidation(self) -> None:
        pass


class Approval(models.Model):
    """One officer's approval of one version of a proposal's terms, the version the officer was shown (the form
    carries it): an edit starts a new version, and this approval never counts for another."""

    proposal = models.ForeignKey(Proposal, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField()
    terms_hash = models.CharField(max_length=64)
    limit = money_field()  # the approver's authority when approving, in the account's currency
    senior = models.BooleanField(default=False)
    # Typed by the approver when the proposal was flagged (unaffordable, likely to default, worth less than
    # liquidating): why they approve all the same. "" when nothing was flagged.
    override_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["proposal", "approver", "version"], name="approval_once_per_version")
        ]

    def __str__(self) -> str:
        return f"approval of proposal {self.proposal_id} by {self.approver_id}"


class Agreement(models.Model):
    """The restructuring agreement of an offer: the PDF drawn when the offer was sent (the parties, the old and new
    terms, the schedule, collateral and reductions, the conditions of default, the expiry), kept through Django's
    storage API with the SHA-256 of exactly the bytes kept. Never changed nor deleted (a trigger refuses both):
    terms that change are a new proposal, offered with an agreement of its own, and a client's accept that names
    another agreement's hash is refused (restructuring/services/negotiation/offers.py)."""

    proposal = models.ForeignKey(Proposal, on_delete=models.PROTECT, related_name="agreements")
    version = models.PositiveIntegerField()  # the proposal's version it sets out
    terms_hash = models.CharField(max_length=64)  # the terms it sets out
    sha256 = models.CharField(max_length=64, unique=True)
    file = models.FileField(max_length=255)
    size = models.PositiveIntegerField()
    language = models.CharField(max_length=8)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["proposal", "version"], name="agreement_once_per_offer_version"),
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="agreement_sha256_hex"),
        ]
        triggers = [pgtrigger.Protect(name="agreement_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"agreement {self.sha256[:12]} of proposal {self.proposal_id} (version {self.version})"

    @property
    def stored_name(self) -> str:
        """The file's name in the storage (Django's storage API)."""
        return self.file.name or ""


class ApprovalLimit(models.Model):
    """A user's own approval authority in one currency, overriding the role's (WORKOUT_APPROVAL_LIMITS)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="approval_limits")
    currency = models.CharField(max_length=8, default="USD")
    amount = money_field()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "currency"], name="approval_limit_per_currency")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.amount} {self.currency}"


class InstallmentStatus(models.TextChoices):
    DUE = "due", _("Due")
    PAID = "paid", _("Paid")
    MISSED = "missed", _("Missed")


class Installment(models.Model):
    """The repayment schedule of an executed restructuring (restructuring/schedules.py), one row per period."""

    proposal = models.ForeignKey(Proposal, on_delete=models.PROTECT, related_name="installments")
    number = models.PositiveIntegerField()
    due = models.DateField()
    principal = money_field()
    interest = money_field()
    arrears = money_field()
    total = money_field()
    balance = money_field()
    status = models.CharField(max_length=6, choices=InstallmentStatus.choices, default=InstallmentStatus.DUE)
    # What payments have covered so far (restructuring/allocation.py's waterfall): the arrears part (the fees),
    # then the interest, then the principal. `paid_amount` is their sum; the installment is PAID when it equals
    # `total`, and DUE with a carried balance (partly paid) before that. `paid_at`: when it was paid in full.
    paid_amount = money_field(default=Decimal(0))
    arrears_paid = money_field(default=Decimal(0))
    interest_paid = money_field(default=Decimal(0))
    principal_paid = money_field(default=Decimal(0))
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["proposal", "number"], name="installment_number_unique"),
            models.CheckConstraint(
                condition=Q(arrears_paid__gte=0, arrears_paid__lte=models.F("arrears"))
                & Q(interest_paid__gte=0, interest_paid__lte=models.F("interest"))
                & Q(principal_paid__gte=0, principal_paid__lte=models.F("principal")),
                name="installment_paid_within_parts",
            ),
        ]
        ordering = ["proposal", "number"]

    def __str__(self) -> str:
        return f"installment {self.number} of proposal {self.proposal_id}"

    @property
    def outstanding(self) -> Decimal:
        return self.total - self.paid_amount

    @property
    def partly_paid(self) -> bool:
        return self.status == InstallmentStatus.DUE and self.paid_amount > 0


class Repayment(models.Model):
    """One payment received on a restructured loan, as an officer recorded it. Its allocation over the schedule
    (RepaymentAllocation rows) is the waterfall's; neither is ever changed (a trigger refuses it): a payment
    recorded in error is answered by a new entry, not an edit."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="repayments")
    proposal = models.ForeignKey(Proposal, on_delete=models.PROTECT, related_name="repayments")
    amount = money_field()
    received_at = models.DateTimeField()
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The loan's principal after this payment (the schedule's principal still unpaid).
    principal_after = money_field()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="repayment_amount_gt_0")]
        indexes = [models.Index(fields=["case", "received_at"], name="repayment_case_received_idx")]
        triggers = [pgtrigger.Protect(name="repayment_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"repayment {self.amount} on case {self.case_id}"


class RepaymentAllocation(models.Model):
    """What one payment paid of one installment, by part."""

    repayment = models.ForeignKey(Repayment, on_delete=models.PROTECT, related_name="allocations")
    installment = models.ForeignKey(Installment, on_delete=models.PROTECT, related_name="allocations")
    arrears = money_field()
    interest = money_field()
    principal = money_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["repayment", "installment"], name="allocation_once_per_installment"),
            models.CheckConstraint(
                condition=Q(arrears__gte=0, interest__gte=0, principal__gte=0), name="allocation_parts_gte_0"
            ),
        ]
        triggers = [pgtrigger.Protect(name="allocation_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"repayment {self.repayment_id} to installment {self.installment_id}"

    @property
    def total(self) -> Decimal:
        return self.arrears + self.interest + self.principal


class CollateralDemand(models.Model):
    """Collateral an executed restructuring requires, due by a date."""

    proposal = models.OneToOneField(Proposal, on_delete=models.PROTECT, related_name="collateral_demand")
    amount = money_field()
    due = models.DateTimeField()
    met_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"collateral {self.amount} for proposal {self.proposal_id}"


class TopUpStatus(models.TextChoices):
    PENDING = "pending", _("Pending: declared by the client")
    CONFIRMED = "confirmed", _("Confirmed by operations")
    REJECTED = "rejected", _("Rejected by operations")


class CollateralTopUp(models.Model):
    """Collateral a client says it has sent: pending until operations confirm it (then it is cash)."""

    account = models.ForeignKey(MarginAccount, on_delete=models.PROTECT, related_name="top_ups")
    amount = money_field()
    reference = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=9, choices=TopUpStatus.choices, default=TopUpStatus.PENDING)
    declared_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="topup_amount_gt_0")]

    def __str__(self) -> str:
        return f"top-up {self.amount} to {self.account_id} ({self.status})"


class ReductionOrder(models.Model):
    """A position reduction an executed restructuring issued (sold by the desk, like a liquidation order)."""

    proposal = models.ForeignKey(Proposal, on_delete=models.PROTECT, related_name="reduction_orders")
    position_id = models.BigIntegerField()
    instrument = models.ForeignKey("accounts.Instrument", on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(max_digits=28, decimal_places=8)  # position units, signed: > 0 sold
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"reduce {self.quantity} of position {self.position_id}"


# ------------------------------------------------------------------------------------------- the conversation
# Notes and contacts are never changed (a trigger refuses UPDATE and DELETE): a correction is a new entry whose
# `corrects` names the one it corrects, on the same case. Each is audited (note.add, contact.log).


class Note(models.Model):
    """An officer's note on a case, with an optional reminder date. Internal: never shown to the client."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    remind_on = models.DateField(null=True, blank=True)
    corrects = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrections")
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["case", "created_at"], name="note_case_created_idx")]
        triggers = [pgtrigger.Protect(name="note_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"note {self.pk} on case {self.case_id}"


class ContactChannel(models.TextChoices):
    CALL = "call", _("Call")
    EMAIL = "email", _("Email")
    MEETING = "meeting", _("Meeting")
    LETTER = "letter", _("Letter")


class ContactDirection(models.TextChoices):
    OUTBOUND = "outbound", _("We contacted the client")
    INBOUND = "inbound", _("The client contacted us")


class ContactOutcome(models.TextChoices):
    REACHED = "reached", _("Reached")
    PROMISE = "promise", _("Promise to pay made")
    REFUSED = "refused", _("Refused to pay")
    DISPUTED = "disputed", _("Disputes the debt")
    NO_ANSWER = "no_answer", _("No answer")
    MESSAGE_LEFT = "message_left", _("Message left")
    WRONG_CONTACT = "wrong_contact", _("Wrong contact details")


class Contact(models.Model):
    """A contact with the client: a call, email, meeting or letter, either way, with its outcome and the person
    reached. Shown to the client in its API timeline (channel, direction, outcome, when), never the summary."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="contacts")
    officer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=7, choices=ContactChannel.choices)
    direction = models.CharField(max_length=8, choices=ContactDirection.choices)
    outcome = models.CharField(max_length=13, choices=ContactOutcome.choices)
    person = models.CharField(max_length=200, blank=True, default="")  # who was reached (or written to)
    summary = models.TextField(blank=True, default="")
    corrects = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrections")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(channel__in=ContactChannel.values), name="contact_channel_valid"),
            models.CheckConstraint(condition=Q(direction__in=ContactDirection.values), name="contact_direction_valid"),
            models.CheckConstraint(condition=Q(outcome__in=ContactOutcome.values), name="contact_outcome_valid"),
        ]
        indexes = [models.Index(fields=["case", "created_at"], name="contact_case_created_idx")]
        triggers = [pgtrigger.Protect(name="contact_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.channel} {self.direction} on case {self.case_id}: {self.outcome}"


class PromiseStatus(models.TextChoices):
    OPEN = "open", _("Open")
    KEPT = "kept", _("Kept")
    BROKEN = "broken", _("Broken")


class PromiseMethod(models.TextChoices):
    BANK_TRANSFER = "bank_transfer", _("Bank transfer")
    CARD = "card", _("Card")
    CRYPTO_TRANSFER = "crypto_transfer", _("Crypto transfer")
    OTHER = "other", _("Other")


class PromiseSource(models.TextChoices):
    OFFICER = "officer", _("Taken by an officer")
    CLIENT = "client", _("Sent by the client")


class PromiseToPay(models.Model):
    """The client's promise to pay `amount` (in the account's currency) by `due`. Tracked by the beat
    (restructuring/services/promises.py): kept when repayments and confirmed top-ups on the account since the
    promise reach the amount within the tolerance by the end of the grace after `due`; broken otherwise. At most
    one promise of a case is open at a time."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="promises")
    amount = money_field()
    due = models.DateField()
    method = models.CharField(max_length=15, choices=PromiseMethod.choices)
    source = models.CharField(max_length=7, choices=PromiseSource.choices)
    made_by = models.ForeignKey(  # the officer who took it; None when the client sent it
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.PROTECT, related_name="promises")
    status = models.CharField(max_length=6, choices=PromiseStatus.choices, default=PromiseStatus.OPEN)
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    received = money_field(null=True, blank=True)  # what had arrived when it was kept or broken

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case"], condition=Q(status=PromiseStatus.OPEN), name="promise_one_open_per_case"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="promise_amount_gt_0"),
            models.CheckConstraint(condition=Q(status__in=PromiseStatus.values), name="promise_status_valid"),
            models.CheckConstraint(condition=Q(method__in=PromiseMethod.values), name="promise_method_valid"),
            models.CheckConstraint(condition=Q(source__in=PromiseSource.values), name="promise_source_valid"),
            models.CheckConstraint(
                condition=Q(status=PromiseStatus.OPEN, resolved_at__isnull=True)
                | (~Q(status=PromiseStatus.OPEN) & Q(resolved_at__isnull=False)),
                name="promise_resolved_at_resolved",
            ),
        ]
        indexes = [
            models.Index(fields=["due"], condition=Q(status=PromiseStatus.OPEN), name="promise_open_due_idx"),
        ]

    def __str__(self) -> str:
        return f"promise {self.amount} by {self.due} on case {self.case_id} ({self.status})"


class SlaEscalation(models.Model):
    """One breach of one SLA clock of a case, escalated once (restructuring/services/sla.py): the clock and
    when it started make the breach, so the beat running twice escalates it once, and a new wait is a new one."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="sla_escalations")
    clock = models.CharField(max_length=40)
    started_at = models.DateTimeField()
    due_at = models.DateTimeField()
    escalated_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "clock", "started_at"], name="sla_escalation_once_per_breach")
        ]

    def __str__(self) -> str:
        return f"{self.clock} breach of case {self.case_id}"


# ------------------------------------------------------------------------------------------------ documents


class DocumentKind(models.TextChoices):
    PROOF_OF_FUNDS = "proof_of_funds", "Proof of funds"
    SIGNED_AGREEMENT = "signed_agreement", "Signed agreement"
    IDENTIFICATION = "identification", "Identification"
    OTHER = "other", "Other"


class DocumentSource(models.TextChoices):
    CLIENT = "client", "Uploaded by the client"
    OFFICER = "officer", "Uploaded by an officer"


class Document(models.Model):
    """A document of a client's, on one of its cases or on none: uploaded by the client (the API) or by an officer
    (the case page), its type told from its content (core/uploads.py), kept through Django's storage API under a
    name of our own with the SHA-256 of its bytes. Never changed nor deleted (a trigger refuses both)."""

    client = models.ForeignKey("accounts.Client", on_delete=models.PROTECT, related_name="documents")
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.PROTECT, related_name="documents")
    kind = models.CharField(max_length=16, choices=DocumentKind.choices)
    name = models.CharField(max_length=100)  # as uploaded, made safe: a label, never a path
    content_type = models.CharField(max_length=40)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(max_length=255)
    source = models.CharField(max_length=7, choices=DocumentSource.choices)
    uploaded_by = models.ForeignKey(  # the officer; None when the client uploaded it
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=DocumentKind.values), name="document_kind_valid"),
            models.CheckConstraint(condition=Q(source__in=DocumentSource.values), name="document_source_valid"),
            models.CheckConstraint(condition=Q(size__gt=0), name="document_size_gt_0"),
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="document_sha256_hex"),
            models.CheckConstraint(
                condition=Q(source=DocumentSource.CLIENT, uploaded_by__isnull=True)
                | Q(source=DocumentSource.OFFICER, uploaded_by__isnull=False),
                name="document_uploader_matches_source",
            ),
        ]
        indexes = [
            models.Index(fields=["client", "created_at"], name="document_client_created_idx"),
            models.Index(fields=["case", "created_at"], name="document_case_created_idx"),
        ]
        triggers = [pgtrigger.Protect(name="document_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.kind} document {self.pk} of client {self.client_id}"

    @property
    def stored_name(self) -> str:
        """The file's name in the storage (Django's storage API): ours, never the uploaded name."""
        return self.file.name or ""

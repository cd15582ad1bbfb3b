"""The book: clients, margin accounts, instruments, positions, loans, prices and risk state.

Money and quantities are Decimal with 8 decimal places (crypto needs them); stored risk figures are
rounded to the account currency's quantum by the sweep. The invariants a row can hold by itself are
database constraints, so a bulk load or a hand-written UPDATE cannot break them either.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Cast, Upper
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.addresses import webhook_url_problem
from core.encryption import TOKEN_PREFIX as ENCRYPTED_TOKEN_PREFIX
from core.fields import EncryptedSecretField


def money_field(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=28, decimal_places=8, **kwargs)  # type: ignore[arg-type]


def rate_field(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=12, decimal_places=8, **kwargs)  # type: ignore[arg-type]


def float_copy(expression: str | models.Expression) -> models.GeneratedField:
    """A float8 copy of a Decimal column (or sum), computed by the database on every write and read only by
    the sweep's bulk load. PostgreSQL 15 turns numeric into float8 through text, about 0.3 us a value: read
    at sweep time that was a third of loading the book. The Decimal column stays the record; no code writes
    the copy, and a hand-written UPDATE of the Decimal refreshes it too."""
    source = F(expression) if isinstance(expression, str) else expression
    return models.GeneratedField(
        expression=Cast(source, models.FloatField()), output_field=models.FloatField(), db_persist=True
    )


class CreditTier(models.TextChoices):
    A = "A", _("A (prime)")
    B = "B", _("B")
    C = "C", _("C")
    D = "D", _("D (sub-standard)")


class ClientGroup(models.Model):
    """Linked accounts under one beneficial owner: their exposures and liquidations are read together."""

    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.code


class Client(models.Model):
    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    credit_tier = models.CharField(max_length=1, choices=CreditTier.choices, default=CreditTier.B)
    group = models.ForeignKey(ClientGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="clients")
    # Liquid resources the client declares outside this book (in USD): feeds loss capacity.
    external_capacity = money_field(default=Decimal(0))
    created_at = models.DateTimeField(auto_now_add=True)
    # Where case notifications go by email (restructuring/services/notifications.py); only when set. Webhooks
    # go to the client's endpoints (WebhookEndpoint, below). A database default too, so that bulk writers (COPY)
    # that do not name the column still load.
    email = models.EmailField(blank=True, default="", db_default="")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(external_capacity__gte=0), name="client_external_capacity_gte_0"),
        ]
        # The queue's search (`q`: a code or a name, any case, anywhere in it) is `UPPER(column) LIKE '%...%'`.
        # No index serves a match inside a string, but these give PostgreSQL statistics on the upper-cased values:
        # without them it guesses that a search matches 2% of the book, and for a search that matches most of it
        # plans 10,000 index probes (the queue's filtered page: 35 ms; with them 2 ms, bench/desk.py).
        indexes = [
            models.Index(Upper("code"), name="client_code_upper_idx"),
            models.Index(Upper("name"), name="client_name_upper_idx"),
        ]

    def __str__(self) -> str:
        return self.code


# Subscribed to every event type, those added later included (what a client's single webhook had before
# endpoints: restructuring/events.py lists the types).
ALL_EVENTS = "*"


class WebhookEndpointState(models.TextChoices):
    ACTIVE = "active", "Active"
    DISABLED = "disabled", "Disabled"


class WebhookDisabledReason(models.TextChoices):
    CLIENT = "client", "Disabled by the client"
    FAILURES = "failures", "Disabled after consecutive failed deliveries"


class WebhookEndpoint(models.Model):
    """One URL a client's events are posted to, signed with its own secret, for the event types it subscribes
    to (restructuring/services/webhooks.py manages them, restructuring/services/notifications.py delivers).

    The secret is the HMAC-SHA256 key of the signature. Not hashed, since signing needs the key itself: encrypted
    at rest (core/fields.py, keys in WORKOUT_WEBHOOK_SECRET_KEYS) and decrypted only to sign. After a rotation
    the previous secret may sign too until `previous_secret_expires_at` (the overlap: both signatures are sent).
    An endpoint is never deleted (its deliveries are its record): it is disabled, by the client or after
    WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES consecutive failed deliveries, and may be enabled again."""

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000, validators=[URLValidator(schemes=["https", "http"])])
    description = models.CharField(max_length=200, blank=True, default="")
    # Event types (restructuring.models.NotificationKind values) or ["*"] for all, those to come included.
    event_types = models.JSONField(default=list)
    secret = EncryptedSecretField(clear_max_length=200, help_text="Write-only: the current secret is never shown.")
    previous_secret = EncryptedSecretField(clear_max_length=200, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=WebhookEndpointState.choices, default=WebhookEndpointState.ACTIVE)
    disabled_reason = models.CharField(max_length=8, choices=WebhookDisabledReason.choices, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Failed delivery attempts in a row (any success resets it): at the setting's count, the endpoint is disabled.
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Only tokens are stored: a clear secret written around the ORM (raw SQL, COPY) is refused.
            models.CheckConstraint(
                condition=Q(secret__startswith=ENCRYPTED_TOKEN_PREFIX), name="webhookendpoint_secret_encrypted"
            ),
            models.CheckConstraint(
                condition=Q(previous_secret="") | Q(previous_secret__startswith=ENCRYPTED_TOKEN_PREFIX),
                name="webhookendpoint_previous_secret_encrypted",
            ),
            models.CheckConstraint(
                condition=Q(state__in=WebhookEndpointState.values), name="webhookendpoint_state_valid"
            ),
            # Disabled, with why and when; active, with neither.
            models.CheckConstraint(
                condition=(
                    Q(state=WebhookEndpointState.ACTIVE, disabled_reason="", disabled_at__isnull=True)
                    | Q(
                        state=WebhookEndpointState.DISABLED,
                        disabled_reason__in=WebhookDisabledReason.values,
                        disabled_at__isnull=False,
                    )
                ),
                name="webhookendpoint_disabled_with_reason",
            ),
        ]
        indexes = [models.Index(fields=["client", "state"], name="webhookendpoint_client_idx")]

    def __str__(self) -> str:
        return f"webhook endpoint {self.pk} of client {self.client_id}"

    @property
    def is_active(self) -> bool:
        return self.state == WebhookEndpointState.ACTIVE

    def subscribes_to(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types

    def clean(self) -> None:
        # A webhook to an address inside the house is refused when it is set (core/addresses.py); the address a
        # name resolves to is checked again at each send, as the connection is opened.
        problem = webhook_url_problem(self.url, allow_private=settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS)
        if problem:
            raise ValidationError({"url": problem})


def time_zone_check(value: str) -> None:
    """An IANA time zone name ("Europe/Berlin"), as zoneinfo knows it."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a time zone name (IANA, e.g. Europe/Berlin)") from None


PHONE_E164 = r"^\+[1-9][0-9]{6,14}$"


class MessagePreferences(models.Model):
    """How a client wants to hear from the lender (restructuring/services/messages.py): the channels it takes (email,
    SMS, letter; its webhooks are its own endpoints'), its language, its time zone and quiet hours, and its phone
    number and postal address. A client without a row takes the defaults: email when Client.email is set, in
    English, at any hour.

    Legally required notices (restructuring/message_catalogue.py LEGALLY_REQUIRED) go on every channel the client has
    an address for, at once, whatever is chosen here; every other message respects the choice and the quiet hours."""

    client = models.OneToOneField(Client, on_delete=models.CASCADE, related_name="message_preferences")
    phone = models.CharField(
        max_length=16,
        blank=True,
        default="",
        validators=[RegexValidator(PHONE_E164, "a phone number in international form, e.g. +4915112345678")],
    )
    postal_address = models.TextField(max_length=500, blank=True, default="")
    locale = models.CharField(max_length=5, choices=settings.LANGUAGES, default="en")
    time_zone = models.CharField(max_length=64, default="UTC", validators=[time_zone_check])
    # No message but the legally required between these local times (the window may span midnight: 21:00-08:00).
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    by_email = models.BooleanField(default=True)
    by_sms = models.BooleanField(default=True)
    by_letter = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "message preferences"
        constraints = [
            models.CheckConstraint(
                condition=Q(quiet_hours_start__isnull=True, quiet_hours_end__isnull=True)
                | (
                    Q(quiet_hours_start__isnull=False, quiet_hours_end__isnull=False)
                    & ~Q(quiet_hours_start=F("quiet_hours_end"))
                ),
                name="message_preferences_quiet_hours_pair",
                violation_error_message="Quiet hours need a start and a different end, or neither.",
            ),
            models.CheckConstraint(
                condition=Q(phone="") | Q(phone__regex=PHONE_E164), name="message_preferences_phone_e164"
            ),
            models.CheckConstraint(
                condition=Q(locale__in=[code for code, _name in settings.LANGUAGES]),
                name="message_preferences_locale_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"message preferences of {self.client_id}"


class MarginMode(models.TextChoices):
    CROSS = "cross", _("Cross")
    ISOLATED = "isolated", _("Isolated")


class MarginModel(models.TextChoices):
    STANDARD = "standard", _("Standard (rate x notional)")
    PORTFOLIO = "portfolio", _("Portfolio (scenario grid)")


class MarginAccount(models.Model):
    code = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="accounts")
    mode = models.CharField(max_length=8, choices=MarginMode.choices, default=MarginMode.CROSS)
    margin_model = models.CharField(max_length=9, choices=MarginModel.choices, default=MarginModel.STANDARD)
    base_currency = models.CharField(max_length=8, default="USD")
    cash = money_field(default=Decimal(0))
    cash_float = float_copy("cash")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # The debt lives in MarginLoan; a debit cash balance would be a second, unpriced loan.
            models.CheckConstraint(condition=Q(cash__gte=0), name="account_cash_gte_0"),
            models.CheckConstraint(condition=Q(mode__in=MarginMode.values), name="account_mode_valid"),
            models.CheckConstraint(condition=Q(margin_model__in=MarginModel.values), name="account_margin_model_valid"),
        ]
        indexes = [models.Index(Upper("code"), name="account_code_upper_idx")]  # the queue's search (Client above)

    def __str__(self) -> str:
        return self.code


class InstrumentKind(models.TextChoices):
    SPOT = "spot", _("Spot asset")
    PERPETUAL = "perpetual", _("Linear perpetual")
    FUTURE = "future", _("Linear future")
    OPTION = "option", _("European option")


class OptionType(models.TextChoices):
    CALL = "call", pgettext_lazy("option type", "Call")
    PUT = "put", pgettext_lazy("option type", "Put")


class ScenarioClass(models.TextChoices):
    """Which scenario range of the portfolio-margin grid applies (see WORKOUT_SCENARIO_RANGES)."""

    EQUITY = "equity", _("Single name or narrow index")
    BROAD_INDEX = "broad_index", _("High-cap broad-based index")
    INDEX = "index", _("Other broad-based index")
    CRYPTO = "crypto", _("Crypto asset")


class Instrument(models.Model):
    symbol = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=9, choices=InstrumentKind.choices)
    currency = models.CharField(max_length=8, default="USD")
    # Options: the asset they are written on; perpetuals and futures: optionally their spot asset, so
    # that hedges on one underlying offset in the scenario grid.
    underlying = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="derivatives")
    strike = models.DecimalField(max_digits=28, decimal_places=8, null=True, blank=True)
    expiry = models.DateTimeField(null=True, blank=True)
    option_type = models.CharField(max_length=4, choices=OptionType.choices, blank=True, default="")
    contract_size = models.DecimalField(max_digits=20, decimal_places=8, default=Decimal(1))
    initial_rate = rate_field()
    maintenance_rate = rate_field()
    haircut = rate_field(default=Decimal(0))
    scenario_class = models.CharField(max_length=11, choices=ScenarioClass.choices, default=ScenarioClass.EQUITY)
    # Liquidity: average daily volume (in units) and daily volatility of returns (the reference level
    # of dynamic margin and the sigma of the square-root impact law).
    average_daily_volume = models.DecimalField(max_digits=28, decimal_places=8, default=Decimal(0))
    daily_volatility = models.DecimalField(max_digits=12, decimal_places=8)
    # Annual continuous dividend or carry yield (Black-Scholes-Merton q) of an underlying.
    carry_yield = rate_field(default=Decimal(0))
    # Model state kept by the price import: EWMA daily volatility and the stressed (largest) EWMA
    # volatility over the lookback; both in daily units.
    ewma_volatility = models.FloatField(null=True, blank=True)
    stressed_volatility = models.FloatField(null=True, blank=True)
    volatility_as_of = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=InstrumentKind.values), name="instrument_kind_valid"),
            models.CheckConstraint(condition=Q(contract_size__gt=0), name="instrument_contract_size_gt_0"),
            models.CheckConstraint(
                condition=Q(maintenance_rate__gt=0)
                & Q(maintenance_rate__lte=F("initial_rate"))
                & Q(initial_rate__lte=1),
                name="instrument_rates_ordered",
            ),
            models.CheckConstraint(condition=Q(haircut__gte=0) & Q(haircut__lte=1), name="instrument_haircut_0_1"),
            models.CheckConstraint(condition=Q(daily_volatility__gt=0), name="instrument_daily_volatility_gt_0"),
            models.CheckConstraint(condition=Q(average_daily_volume__gte=0), name="instrument_adv_gte_0"),
            models.CheckConstraint(
                condition=~Q(kind=InstrumentKind.OPTION)
                | (
                    Q(underlying__isnull=False)
                    & Q(strike__gt=0)
                    & Q(expiry__isnull=False)
                    & Q(option_type__in=OptionType.values)
                ),
                name="instrument_option_terms_complete",
            ),
            models.CheckConstraint(
                condition=Q(kind=InstrumentKind.OPTION) | (Q(strike__isnull=True) & Q(option_type="")),
                name="instrument_only_options_have_strike",
            ),
            models.CheckConstraint(
                condition=~Q(kind=InstrumentKind.FUTURE) | Q(expiry__isnull=False),
                name="instrument_future_has_expiry",
            ),
            models.CheckConstraint(
                condition=~Q(kind=InstrumentKind.SPOT) | Q(underlying__isnull=True),
                name="instrument_spot_has_no_underlying",
            ),
        ]

    def __str__(self) -> str:
        return self.symbol


class Position(models.Model):
    account = models.ForeignKey(MarginAccount, on_delete=models.CASCADE, related_name="positions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="positions")
    quantity = models.DecimalField(max_digits=28, decimal_places=8)  # signed: negative is short
    entry_price = models.DecimalField(max_digits=28, decimal_places=8, default=Decimal(0))
    # Isolated positions only: the margin allocated to this position (already out of the account's cash).
    # Its loss is capped there and it neither draws on nor contributes to the cross pool.
    isolated_margin = money_field(null=True, blank=True)
    quantity_float = float_copy("quantity")
    entry_price_float = float_copy("entry_price")
    isolated_margin_float = float_copy("isolated_margin")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "instrument"], name="position_one_per_instrument"),
            models.CheckConstraint(condition=Q(entry_price__gte=0), name="position_entry_price_gte_0"),
            models.CheckConstraint(
                condition=Q(isolated_margin__isnull=True) | Q(isolated_margin__gte=0),
                name="position_isolated_margin_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.instrument_id} {self.quantity}"


class LoanStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    CLOSED = "closed", _("Closed")


class MarginLoan(models.Model):
    account = models.ForeignKey(MarginAccount, on_delete=models.PROTECT, related_name="loans")
    principal = money_field()
    rate_annual = rate_field()
    accrued_interest = money_field(default=Decimal(0))
    status = models.CharField(max_length=6, choices=LoanStatus.choices, default=LoanStatus.ACTIVE)
    debt_float = float_copy(F("principal") + F("accrued_interest"))
    opened_at = models.DateTimeField(auto_now_add=True)
    maturity_date = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(principal__gte=0), name="loan_principal_gte_0"),
            models.CheckConstraint(condition=Q(rate_annual__gte=0), name="loan_rate_gte_0"),
            models.CheckConstraint(condition=Q(accrued_interest__gte=0), name="loan_accrued_gte_0"),
            models.UniqueConstraint(
                fields=["account"], condition=Q(status=LoanStatus.ACTIVE), name="loan_one_active_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"loan {self.pk} on {self.account_id}"


class Price(models.Model):
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="prices")
    time = models.DateTimeField()
    price = models.DecimalField(max_digits=28, decimal_places=8)
    # Annualised implied volatility of an underlying: options written on it are priced with it.
    implied_volatility = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instrument", "time"], name="price_one_per_instrument_time"),
            models.CheckConstraint(condition=Q(price__gt=0), name="price_gt_0"),
            models.CheckConstraint(
                condition=Q(implied_volatility__isnull=True) | Q(implied_volatility__gt=0),
                name="price_implied_volatility_gt_0",
            ),
        ]
        indexes = [models.Index(fields=["instrument", "-time"], name="price_latest_idx")]

    def __str__(self) -> str:
        return f"{self.instrument_id}@{self.time:%Y-%m-%d %H:%M}={self.price}"


class HealthBand(models.TextChoices):
    HEALTHY = "healthy", _("Healthy")
    WARNING = "warning", _("Warning")
    MARGIN_CALL = "margin_call", _("Margin call")
    CRITICAL = "critical", _("Critical (negative equity)")


class SweepStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class Sweep(models.Model):
    """One run of the risk engine over the book: its inputs (prices, parameters), model version and result."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    as_of = models.DateTimeField()
    status = models.CharField(max_length=7, choices=SweepStatus.choices, default=SweepStatus.RUNNING)
    model_version = models.CharField(max_length=32)
    parameters = models.JSONField(default=dict)
    # {instrument_id: [price, implied_volatility, ewma_volatility, stressed_volatility]} as used
    prices = models.JSONField(default=dict)
    accounts = models.PositiveIntegerField(default=0)
    positions = models.PositiveIntegerField(default=0)
    band_counts = models.JSONField(default=dict)
    timings = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"sweep {self.pk} as of {self.as_of:%Y-%m-%d %H:%M}"


class SweepShard(models.Model):
    """One account-id range [account_id_from, account_id_to) of a sweep. A shard is computed once: a task
    that runs it again (redelivery, retry) finds it done and does nothing; the sweep is finished by whichever
    shard completes last."""

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="shards")
    account_id_from = models.BigIntegerField()
    account_id_to = models.BigIntegerField()
    status = models.CharField(max_length=7, choices=SweepStatus.choices, default=SweepStatus.RUNNING)
    accounts = models.PositiveIntegerField(default=0)
    positions = models.PositiveIntegerField(default=0)
    band_counts = models.JSONField(default=dict)
    timings = models.JSONField(default=dict)
    # the market inputs this shard used, as Sweep.prices (merged there when the sweep closes)
    prices = models.JSONField(default=dict)
    error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sweep", "account_id_from"], name="sweepshard_one_per_range"),
            models.CheckConstraint(condition=Q(account_id_from__lt=F("account_id_to")), name="sweepshard_range"),
        ]

    def __str__(self) -> str:
        return f"sweep {self.sweep_id} [{self.account_id_from}, {self.account_id_to})"


class RiskFigures(models.Model):
    """What the risk engine says of one account, in the account's currency."""

    computed_at = models.DateTimeField()
    equity = money_field()
    market_value = money_field()
    collateral_value = money_field()
    initial_requirement = money_field()
    maintenance_requirement = money_field()
    # equity / maintenance requirement; null when nothing is required (no exposure, no debt at risk)
    margin_ratio = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    shortfall_maintenance = money_field()
    shortfall_initial = money_field()
    worst_scenario_loss = money_field()
    # Uniform price move (fraction, signed) that takes equity to the maintenance requirement; null when
    # no move within -99%..+300% does.
    distance_to_liquidation = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    isolated_equity = money_field(default=Decimal(0))
    isolated_breaches = models.PositiveIntegerField(default=0)
    band = models.CharField(max_length=11, choices=HealthBand.choices)

    class Meta:
        abstract = True


class RiskState(RiskFigures):
    """The latest risk figures of each account, updated in place by every sweep."""

    account = models.OneToOneField(MarginAccount, primary_key=True, on_delete=models.CASCADE, related_name="risk")
    # No database constraint nor index: every sweep rewrites this column on every row, and a foreign-key
    # check per row would cost as much as the rest of the update. Sweeps are never deleted.
    sweep = models.ForeignKey(Sweep, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False)
    last_history_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["band"], name="riskstate_band_idx")]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.band}"


class SnapshotReason(models.TextChoices):
    FIRST = "first", _("First sweep of the account")
    BAND_CHANGE = "band_change", _("Health band changed")
    INTERVAL = "interval", _("History interval elapsed")


class RiskSnapshot(RiskFigures):
    """History: written when an account's band changes and at a configurable interval, so the table
    grows with events, not with sweeps. `inputs` holds the book of the account as the sweep saw it."""

    account = models.ForeignKey(MarginAccount, on_delete=models.CASCADE, related_name="risk_snapshots")
    sweep = models.ForeignKey(Sweep, on_delete=models.PROTECT, related_name="snapshots")
    previous_band = models.CharField(max_length=11, choices=HealthBand.choices, blank=True, default="")
    reason = models.CharField(max_length=11, choices=SnapshotReason.choices)
    inputs = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "sweep"], name="snapshot_one_per_account_sweep"),
        ]
        indexes = [models.Index(fields=["account", "-computed_at"], name="snapshot_account_time_idx")]

    def __str__(self) -> str:
        return f"{self.account_id}@{self.computed_at:%Y-%m-%d %H:%M}: {self.band}"


# ------------------------------------------------------------------------------------- the API's credentials


class ApiToken(models.Model):
    """A bearer token of the API (accounts/tokens/authentication.py): a client's, or a member of staff's for the
    operations endpoints. Only the SHA-256 of the token is stored; the token itself is shown once, when it is
    made. `prefix` is its public part, by which people name a token (lists, revocation) without the secret."""

    # The object type of its audit events. The model was core's until the layers were declared (core imports
    # nothing above it, and a token belongs to a client): its events, stored and new, keep one name (core.audit).
    audit_object_type = "core.apitoken"

    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(Client, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "core_apitoken"  # moved from core without touching the table (accounts/migrations/0007)
        constraints = [
            models.CheckConstraint(
                condition=(Q(client__isnull=False) & Q(user__isnull=True))
                | (Q(client__isnull=True) & Q(user__isnull=False)),
                name="apitoken_client_xor_user",
            ),
            models.CheckConstraint(condition=Q(expires_at__gt=F("created_at")), name="apitoken_expires_later"),
        ]

    def __str__(self) -> str:
        return f"token {self.prefix}"

"""factory_boy factories for the book. Defaults are valid and unremarkable: a spot instrument with
ordered rates, a cross-margin USD account, a position without isolated margin. `Factory.create(...)` is
typed as the model; `Factory(...)` returns the same object but mypy sees the factory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory

from accounts.models import (
    Client,
    ClientGroup,
    Instrument,
    InstrumentKind,
    LoanStatus,
    MarginAccount,
    MarginLoan,
    OptionType,
    Position,
    Price,
)


class ClientGroupFactory(factory.django.DjangoModelFactory[ClientGroup]):
    class Meta:
        model = ClientGroup

    code = factory.Sequence(lambda n: f"GRP-{n:05d}")
    name = factory.LazyAttribute(lambda group: f"Group {group.code}")


class ClientFactory(factory.django.DjangoModelFactory[Client]):
    class Meta:
        model = Client

    code = factory.Sequence(lambda n: f"C-{n:05d}")
    name = factory.LazyAttribute(lambda client: f"Client {client.code}")


class MarginAccountFactory(factory.django.DjangoModelFactory[MarginAccount]):
    class Meta:
        model = MarginAccount

    code = factory.Sequence(lambda n: f"ACC-{n:05d}")
    client = factory.SubFactory(ClientFactory)
    cash = Decimal("10000.00")


class InstrumentFactory(factory.django.DjangoModelFactory[Instrument]):
    """A spot asset in USD."""

    class Meta:
        model = Instrument

    symbol = factory.Sequence(lambda n: f"SPOT{n:04d}")
    kind = InstrumentKind.SPOT
    currency = "USD"
    initial_rate = Decimal("0.50")
    maintenance_rate = Decimal("0.25")
    daily_volatility = Decimal("0.02")


class PerpetualFactory(InstrumentFactory):
    symbol = factory.Sequence(lambda n: f"PERP{n:04d}")
    kind = InstrumentKind.PERPETUAL
    underlying = factory.SubFactory(InstrumentFactory)
    initial_rate = Decimal("0.10")
    maintenance_rate = Decimal("0.05")


class OptionFactory(InstrumentFactory):
    """A European call on a new spot asset, 100 per contract, expiring in 90 days."""

    symbol = factory.Sequence(lambda n: f"OPT{n:04d}")
    kind = InstrumentKind.OPTION
    underlying = factory.SubFactory(InstrumentFactory)
    strike = Decimal("100")
    expiry = factory.LazyFunction(lambda: datetime.now(UTC) + timedelta(days=90))
    option_type = OptionType.CALL
    contract_size = Decimal("100")
    initial_rate = Decimal("0.20")
    maintenance_rate = Decimal("0.15")


class PositionFactory(factory.django.DjangoModelFactory[Position]):
    class Meta:
        model = Position

    account = factory.SubFactory(MarginAccountFactory)
    instrument = factory.SubFactory(InstrumentFactory)
    quantity = Decimal("100")
    entry_price = Decimal("50.00")


class MarginLoanFactory(factory.django.DjangoModelFactory[MarginLoan]):
    class Meta:
        model = MarginLoan

    account = factory.SubFactory(MarginAccountFactory)
    principal = Decimal("100000.00")
    rate_annual = Decimal("0.08")
    status = LoanStatus.ACTIVE


class PriceFactory(factory.django.DjangoModelFactory[Price]):
    class Meta:
        model = Price

    instrument = factory.SubFactory(InstrumentFactory)
    time = factory.Sequence(lambda n: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=n))
    price = Decimal("100.00")

"""What an import did: the counts of each entity, created, updated or deleted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EntityCounts:
    created: int = 0
    # Rows that were already in the book and were rewritten from the file, changed or not.
    updated: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class ImportResult:
    file: str
    groups: EntityCounts = EntityCounts()
    clients: EntityCounts = EntityCounts()
    instruments: EntityCounts = EntityCounts()
    accounts: EntityCounts = EntityCounts()
    loans: EntityCounts = EntityCounts()
    positions: EntityCounts = EntityCounts()
    prices: EntityCounts = EntityCounts()
    # Prices import: the instruments that got at least one price (their volatility state is now stale).
    priced_instrument_ids: frozenset[int] = frozenset()

    def counts(self) -> dict[str, EntityCounts]:
        """The counts of every entity the import touched, in book order."""
        by_entity = {
            "groups": self.groups,
            "clients": self.clients,
            "instruments": self.instruments,
            "accounts": self.accounts,
            "loans": self.loans,
            "positions": self.positions,
            "prices": self.prices,
        }
        return {name: counts for name, counts in by_entity.items() if counts != EntityCounts()}

"""The clients of the demo book: names, credit tiers, families grouped under one beneficial owner."""

from __future__ import annotations

from typing import Final

import numpy as np

from demo.book.market import _round_to
from demo.book.rows import ClientRows, GroupRows, IntArray

CREDIT_TIERS: Final = ("A", "B", "C", "D")
_CREDIT_TIER_SHARES: Final = (0.20, 0.45, 0.25, 0.10)

_FIRST_NAMES: Final = (
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Beatriz", "Boris", "Chen", "Chloe", "Dmitri", "Elena", "Emeka",
    "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jamal", "Julia", "Kenji", "Lars", "Leila",
    "Luca", "Maya", "Mateo", "Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael", "Sara", "Sofia", "Tariq",
    "Tomas", "Wei", "Yara", "Zoe",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Abbott", "Alvarez", "Bauer", "Becker", "Castro", "Chen", "Costa", "Dubois", "Eriksen", "Fischer",
    "Garcia", "Gupta", "Haddad", "Hansen", "Ibrahim", "Ivanova", "Jensen", "Kim", "Kowalski", "Larsen",
    "Lindqvist", "Lopez", "Mahlangu", "Martin", "Mensah", "Moreau", "Nakamura", "Novak", "Okafor", "Olsen",
    "Patel", "Peeters", "Petrov", "Quinn", "Rahman", "Rossi", "Santos", "Schmidt", "Silva", "Sokolov",
    "Suzuki", "Tanaka", "Varga", "Vogel", "Walsh", "Weber", "Yilmaz", "Zhang",
)  # fmt: skip
_COMPANY_SUFFIXES: Final = ("Capital LLC", "Trading Ltd", "Holdings", "Partners LP", "Ventures")
_GROUP_SUFFIXES: Final = ("family office", "holdings", "group")


def _clients_build(rng: np.random.Generator, *, accounts: int) -> tuple[GroupRows, ClientRows, IntArray]:
    """Clients with 1 to 4 accounts each; about 10% of clients in groups of 2 to 5."""
    per_client = rng.choice([1, 2, 3, 4], size=accounts, p=[0.82, 0.13, 0.04, 0.01])
    n_clients = int(np.searchsorted(np.cumsum(per_client), accounts) + 1)
    account_client = np.repeat(np.arange(n_clients, dtype=np.int64), per_client[:n_clients])[:accounts]

    group = np.full(n_clients, -1, dtype=np.int64)
    sizes = rng.integers(2, 6, size=max(1, n_clients // 10))
    sizes = sizes[np.cumsum(sizes) <= n_clients // 10]
    members = rng.permutation(n_clients)[: int(sizes.sum())]
    group[members] = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)

    first = rng.integers(0, len(_FIRST_NAMES), size=n_clients)
    last = rng.integers(0, len(_LAST_NAMES), size=n_clients)
    # A group is a family (or its companies) under one beneficial owner: its members share the surname.
    group_surname = rng.integers(0, len(_LAST_NAMES), size=len(sizes))
    last[members] = group_surname[group[members]]
    company = rng.random(n_clients) < 0.12
    suffix = rng.integers(0, len(_COMPANY_SUFFIXES), size=n_clients)
    names = [
        f"{_LAST_NAMES[j]} {_COMPANY_SUFFIXES[s]}" if c else f"{_FIRST_NAMES[i]} {_LAST_NAMES[j]}"
        for i, j, c, s in zip(first.tolist(), last.tolist(), company.tolist(), suffix.tolist(), strict=True)
    ]
    tier = rng.choice(len(CREDIT_TIERS), size=n_clients, p=_CREDIT_TIER_SHARES).astype(np.int64)
    declares = rng.random(n_clients) < 0.30
    capacity = np.where(declares, _round_to(rng.lognormal(np.log(100_000.0), 1.0, size=n_clients), 2), 0.0)

    group_suffix = rng.integers(0, len(_GROUP_SUFFIXES), size=len(sizes))
    groups = GroupRows(
        code=[f"GRP{k + 1:04d}" for k in range(len(sizes))],
        name=[
            f"{_LAST_NAMES[s]} {_GROUP_SUFFIXES[x]}"
            for s, x in zip(group_surname.tolist(), group_suffix.tolist(), strict=True)
        ],
    )
    clients = ClientRows(
        code=[f"CL{k + 1:06d}" for k in range(n_clients)],
        name=names,
        credit_tier=tier,
        group=group,
        external_capacity=capacity,
    )
    return groups, clients, account_client

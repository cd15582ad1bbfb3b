"""The catalogue of audit actions: every action the trail holds is declared once, with the type of object it is
about, who may read it, and a typed builder of its event.

Each app declares its own actions in its `audit_events` module (`core/audit_events.py`,
`rules/audit_events.py`, `restructuring/audit_events.py`), so that `core` imports no app above it; the catalogue
finds them the way Django's admin finds `admin` modules (`autodiscover_modules`). A service builds its event from
the declaration, never from a free string::

    audit_record(CASE_OPEN.entry(case, system_actor="sweep", account_id=case.account_id, to_state=case.state))

`tests/core/test_audit_catalogue.py` fails on an action name written anywhere else in the source.

Names are forever. An action's `name` is what the trail stores, and the trail's hash covers it, so a name is
never changed: a name that drifted from the scheme `<object>.<verb>` keeps being written as it is, and its
declaration says which name the scheme would give it (`canonical`). `action_names("proposal.approve")` gives
every stored name filed under that one, so a read can ask for the scheme's name and find what was written.

Who may read an event is a property of its action (`audience`): compliance reads the whole trail, officers read
what concerns the cases they work, and a client reads only the actions declared visible to clients, on the objects
that are its own (restructuring.selectors.events).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models
from django.utils.module_loading import autodiscover_modules

from core.audit import AuditEntry

__all__ = [
    "COMPLIANCE_ONLY",
    "EVERYONE",
    "STAFF",
    "Audience",
    "AuditAction",
    "AuditActionFamily",
    "action_names",
    "actions_for",
    "audit_action",
    "audit_actions",
    "audit_object_type",
    "declare",
    "declare_family",
    "drifted_names",
]


class Audience(StrEnum):
    OFFICER = "officer"  # the credit officers, on the case page
    COMPLIANCE = "compliance"  # the reviewers: the whole trail, its search, export and case histories
    CLIENT = "client"  # the client, on its own cases' timelines (the API)


EVERYONE = frozenset(Audience)
STAFF = frozenset({Audience.OFFICER, Audience.COMPLIANCE})
COMPLIANCE_ONLY = frozenset({Audience.COMPLIANCE})

_NAME = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")


M = TypeVar("M", bound=models.Model, contravariant=True)  # the type of the object an action is about
T = TypeVar("T", bound=models.Model)


def audit_object_type(model: type[models.Model]) -> str:
    """The trail's name for a model: "app_label.model" ("restructuring.case"), or the name a model moved between apps
    keeps for its events (its `audit_object_type`: API tokens, now in accounts, stay "core.apitoken")."""
    kept = getattr(model, "audit_object_type", None)
    return kept if isinstance(kept, str) else f"{model._meta.app_label}.{model._meta.model_name}"


@dataclass(frozen=True, eq=False)
class AuditAction(Generic[M]):
    """One action of the trail. `entry` builds its event about one object of the declared type."""

    name: str  # as stored, forever
    object_type: str
    audience: frozenset[Audience]
    summary: str  # what happened, for the reader of the trail and of this catalogue
    canonical: str = ""  # the scheme's name, when the stored one drifted from it ("" when it did not)

    def entry(
        self,
        obj: M,
        *,
        actor: AbstractBaseUser | None = None,
        system_actor: str = "",
        account_id: int | None = None,
        from_state: str = "",
        to_state: str = "",
        reason: str = "",
        payload: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            action=self.name,
            object_type=self.object_type,
            object_id=obj.pk,
            account_id=account_id,
            actor=actor,
            system_actor=system_actor,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            payload=payload or {},
        )

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class AuditActionFamily(Generic[M]):
    """Actions named `<prefix>.<name>` for an open set of names (an operation per command: "operation.sweep")."""

    prefix: str
    object_type: str
    audience: frozenset[Audience]
    summary: str

    def name_of(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def entry(
        self,
        obj: M,
        name: str,
        *,
        actor: AbstractBaseUser | None = None,
        system_actor: str = "",
        payload: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            action=self.name_of(name),
            object_type=self.object_type,
            object_id=obj.pk,
            actor=actor,
            system_actor=system_actor,
            payload=payload or {},
        )


_actions: dict[str, AuditAction[Any]] = {}
_families: dict[str, AuditActionFamily[Any]] = {}
_discovered = False


def declare(
    name: str, model: type[T], *, audience: frozenset[Audience], summary: str, canonical: str = ""
) -> AuditAction[T]:
    """Declare an action about objects of `model` (called once per action, at import of an `audit_events`)."""
    if not _NAME.match(name) or (canonical and not _NAME.match(canonical)):
        raise ValueError(f"{name!r}: an action is named 'object.verb' in lower-case words")
    if Audience.COMPLIANCE not in audience:
        raise ValueError(f"{name}: compliance reads the whole trail, it is in every audience")
    if name in _actions or name.partition(".")[0] in _families:
        raise ValueError(f"{name} is declared twice")
    action: AuditAction[T] = AuditAction(
        name=name,
        object_type=audit_object_type(model),
        audience=audience,
        summary=summary,
        canonical=canonical,
    )
    _actions[name] = action
    return action


def declare_family(prefix: str, model: type[T], *, audience: frozenset[Audience], summary: str) -> AuditActionFamily[T]:
    if Audience.COMPLIANCE not in audience:
        raise ValueError(f"{prefix}.*: compliance reads the whole trail, it is in every audience")
    if prefix in _families or any(n.partition(".")[0] == prefix for n in _actions):
        raise ValueError(f"{prefix}.* is declared twice")
    family: AuditActionFamily[T] = AuditActionFamily(
        prefix=prefix,
        object_type=audit_object_type(model),
        audience=audience,
        summary=summary,
    )
    _families[prefix] = family
    return family


def _discover() -> None:
    global _discovered
    if not _discovered:
        autodiscover_modules("audit_events")
        _discovered = True


def audit_actions() -> Iterator[AuditAction[Any] | AuditActionFamily[Any]]:
    """Every declaration, actions by name then families by prefix."""
    _discover()
    yield from (_actions[name] for name in sorted(_actions))
    yield from (_families[prefix] for prefix in sorted(_families))


def audit_action(name: str) -> AuditAction[Any] | AuditActionFamily[Any] | None:
    """The declaration of a stored action name (None for a name this version does not know)."""
    _discover()
    if name in _actions:
        return _actions[name]
    prefix, dot, rest = name.partition(".")
    return _families.get(prefix) if dot and rest else None


def actions_for(audience: Audience) -> tuple[str, ...]:
    """The names of the (non-family) actions `audience` may read, sorted."""
    _discover()
    return tuple(sorted(name for name, action in _actions.items() if audience in action.audience))


def action_names(name: str) -> tuple[str, ...]:
    """The stored names filed under `name`: itself if declared, and every drifted name whose canonical it is."""
    _discover()
    return tuple(sorted({n for n, a in _actions.items() if n == name or a.canonical == name}))


def drifted_names() -> dict[str, str]:
    """Stored name -> the scheme's name, for the names that drifted (kept as they are: the chain covers them)."""
    _discover()
    return {n: a.canonical for n, a in sorted(_actions.items()) if a.canonical}

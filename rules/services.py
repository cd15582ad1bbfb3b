"""The life of a rule set: drafts are edited (every rule checked as it is saved), published by a senior credit
officer (retiring the set in force, one audit event), cloned to change the policy; the published set is
compiled once per process and version. Loading a rule set from a data file is how the default set ships.

Policy is four-eyed: every change of a draft is audited and its author recorded (`created_by`, `editors`); a set
is published only by a senior who neither wrote nor edited any of it. A system actor (a command) publishes only
the first policy of an installation: once a set is in force, the next one is published by a person.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext

from core.audit import AuditEntry, audit_record
from core.audit_catalogue import AuditAction
from core.errors import Conflict, PermissionDenied, ValidationError
from core.jsonparse import JsonInputError
from core.jsonparse import loads as json_loads
from rules.audit_events import (
    RULESET_CLONE,
    RULESET_CREATE,
    RULESET_PUBLISH,
    RULESET_RULE_DELETE,
    RULESET_RULE_SAVE,
)
from rules.engine import CompiledRule, RuleError, RuleSpec, rule_compile, ruleset_compile
from rules.expressions import ExpressionError
from rules.models import Rule, RuleSet, RuleSetStatus

DEFAULT_RULES = Path(__file__).resolve().parent / "data" / "default_rules.json"
_RULE_FIELDS = ("name", "description", "priority", "condition", "action", "parameters", "package", "stop_processing")


class RuleSetNotEditableError(Conflict):
    code = "ruleset_not_editable"


class PublishPermissionError(PermissionDenied):
    """The actor may not change the policy: no actor named, no permission to publish, an author or editor of the
    set publishing it (four eyes), or a system actor publishing over a set in force."""


def _actor_fields(actor: User | None, system_actor: str) -> dict[str, Any]:
    if actor is None and not system_actor:
        raise PublishPermissionError(gettext("a change of policy needs a user, or a named system actor"))
    return {"actor": actor, "system_actor": "" if actor is not None else system_actor}


def _set_event(
    rule_set: RuleSet, action: AuditAction[RuleSet], actor: User | None, system_actor: str, **payload: Any
) -> AuditEntry:
    return action.entry(
        rule_set,
        from_state=str(rule_set.status),
        to_state=str(rule_set.status),
        payload={"version": rule_set.version, **payload},
        **_actor_fields(actor, system_actor),
    )


class RuleValidationError(ValidationError):
    code = "rule_invalid"


def spec_of(rule: Rule | Mapping[str, Any]) -> RuleSpec:
    data = {f: getattr(rule, f) for f in _RULE_FIELDS} if isinstance(rule, Rule) else dict(rule)
    return RuleSpec(
        name=str(data.get("name", "")),
        priority=int(data.get("priority", 100)),
        condition=str(data.get("condition", "")),
        action=str(data.get("action", "")),
        parameters=dict(data.get("parameters") or {}),
        package=str(data.get("package") or data.get("name", "")),
        stop_processing=bool(data.get("stop_processing", False)),
        description=str(data.get("description", "")),
    )


def rule_check(spec: RuleSpec) -> CompiledRule:
    """Compile a rule, turning its errors into a ValidationError that names the rule, the field and where."""
    try:
        return rule_compile(spec)
    except ExpressionError as exc:
        raise RuleValidationError(str(exc), rule=exc.rule, field=exc.field, position=exc.position) from None
    except RuleError as exc:
        raise RuleValidationError(str(exc), rule=exc.rule, field=exc.field) from None


def _next_version() -> int:
    return (RuleSet.objects.aggregate(v=Max("version"))["v"] or 0) + 1


def ruleset_create(
    *,
    name: str,
    rules: Sequence[Mapping[str, Any]],
    actor: User | None = None,
    description: str = "",
    system_actor: str = "setup",
) -> RuleSet:
    """A new draft with these rules, each checked; all or nothing. Its author is `actor` (else the system actor)."""
    specs = [spec_of(r) for r in rules]
    for spec in specs:
        rule_check(spec)
    try:
        ruleset_compile(specs)  # names unique
    except RuleError as exc:
        raise RuleValidationError(str(exc), rule=exc.rule, field=exc.field) from None
    with transaction.atomic():
        rule_set = RuleSet.objects.create(
            name=name, version=_next_version(), description=description, created_at=timezone.now(), created_by=actor
        )
        Rule.objects.bulk_create(_row(rule_set, s) for s in specs)
        audit_record(
            _set_event(
                rule_set,
                RULESET_CREATE,
                actor,
                system_actor,
                rules=[s.name for s in specs],
                digest=ruleset_digest(specs),
            )
        )
    return rule_set


def _row(rule_set: RuleSet, spec: RuleSpec) -> Rule:
    return Rule(
        rule_set=rule_set,
        name=spec.name,
        description=spec.description,
        priority=spec.priority,
        condition=spec.condition,
        action=spec.action,
        parameters=dict(spec.parameters),
        package=spec.package or spec.name,
        stop_processing=spec.stop_processing,
    )


def _draft(rule_set_id: int) -> RuleSet:
    rule_set = RuleSet.objects.select_for_update().get(pk=rule_set_id)
    if rule_set.status != RuleSetStatus.DRAFT:
        raise RuleSetNotEditableError(
            gettext(
                "rule set v%(rule_set_version)s is %(rule_set_status)s: it never changes; clone it into a new draft"
            )
            % {"rule_set_version": rule_set.version, "rule_set_status": rule_set.status},
            rule_set_id=rule_set_id,
        )
    return rule_set


def _rule_of(rule: Rule | None) -> dict[str, Any] | None:
    return None if rule is None else {f: getattr(rule, f) for f in _RULE_FIELDS}


def rule_save(*, rule_set_id: int, rule: Mapping[str, Any], actor: User, replaces: str | None = None) -> Rule:
    """Add a rule to a draft, or replace the one named `replaces`; checked first, refused on a non-draft. The
    actor becomes one of the set's editors; one audit event with the rule before and after."""
    spec = spec_of(rule)
    rule_check(spec)
    with transaction.atomic():
        rule_set = _draft(rule_set_id)
        others = rule_set.rules.exclude(name=replaces) if replaces else rule_set.rules.all()
        if others.filter(name=spec.name).exists():
            raise RuleValidationError(
                gettext("rule %(name)s, name: two rules have this name") % {"name": repr(spec.name)},
                rule=spec.name,
            )
        before = _rule_of(rule_set.rules.filter(name=replaces).first()) if replaces else None
        if replaces:
            rule_set.rules.filter(name=replaces).delete()
        saved = Rule.objects.create(**{f: getattr(_row(rule_set, spec), f) for f in _RULE_FIELDS}, rule_set=rule_set)
        rule_set.editors.add(actor)
        audit_record(
            _set_event(rule_set, RULESET_RULE_SAVE, actor, "", rule=spec.name, before=before, after=_rule_of(saved))
        )
        return saved


def rule_delete(*, rule_set_id: int, name: str, actor: User) -> None:
    """Delete a rule of a draft; the actor becomes one of the set's editors; one audit event with the rule."""
    with transaction.atomic():
        rule_set = _draft(rule_set_id)
        rule = rule_set.rules.filter(name=name).first()
        if rule is None:
            raise RuleValidationError(
                gettext("rule %(name)s is not in rule set v%(rule_set_version)s")
                % {"name": repr(name), "rule_set_version": rule_set.version},
                rule=name,
            )
        before = _rule_of(rule)
        rule.delete()
        rule_set.editors.add(actor)
        audit_record(_set_event(rule_set, RULESET_RULE_DELETE, actor, "", rule=name, before=before))


def ruleset_clone(
    *, rule_set_id: int, actor: User | None = None, name: str | None = None, system_actor: str = "setup"
) -> RuleSet:
    """A new draft with the same rules (how a published set is changed); the actor is its author."""
    source = RuleSet.objects.get(pk=rule_set_id)
    with transaction.atomic():
        draft = RuleSet.objects.create(
            name=name or source.name,
            version=_next_version(),
            description=source.description,
            cloned_from=source,
            created_at=timezone.now(),
            created_by=actor,
        )
        Rule.objects.bulk_create(_row(draft, spec_of(r)) for r in source.rules.all())
        audit_record(_set_event(draft, RULESET_CLONE, actor, system_actor, cloned_from=source.version))
    return draft


def ruleset_authors(rule_set: RuleSet) -> set[int]:
    """The users who wrote or edited the set (its creator and every editor of its draft)."""
    authors = set(rule_set.editors.values_list("pk", flat=True))
    if rule_set.created_by_id is not None:
        authors.add(rule_set.created_by_id)
    return authors


def ruleset_publish(*, rule_set_id: int, actor: User | None, system_actor: str = "") -> RuleSet:
    """Put a draft in force: needs rules.publish_ruleset (a senior credit officer) who neither wrote nor edited
    it; the set in force is retired in the same transaction; one audit event. Every rule is checked again first.
    A system actor publishes only when no set is in force (the first policy of an installation)."""
    if actor is not None and not actor.has_perm("rules.publish_ruleset"):
        raise PublishPermissionError(
            gettext("%(actor)s may not publish rule sets") % {"actor": actor}, rule_set_id=rule_set_id
        )
    if actor is None and not system_actor:
        raise PublishPermissionError(gettext("publishing needs a user with the permission, or a named system actor"))
    now = timezone.now()
    with transaction.atomic():
        rule_set = _draft(rule_set_id)
        if actor is not None and actor.pk in ruleset_authors(rule_set):
            raise PublishPermissionError(
                gettext(
                    "%(actor)s wrote or edited rule set v%(rule_set_version)s: another senior credit officer must "
                    "publish it"
                )
                % {"actor": actor.get_username(), "rule_set_version": rule_set.version},
                rule_set_id=rule_set_id,
            )
        if actor is None and RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).exists():
            raise PublishPermissionError(
                gettext(
                    "a rule set is in force: v%(rule_set_version)s is published in the rules pages, by a senior "
                    "credit officer who did not write it"
                )
                % {"rule_set_version": rule_set.version},
                rule_set_id=rule_set_id,
            )
        specs = [spec_of(r) for r in rule_set.rules.all()]
        if not specs:
            raise RuleValidationError(
                gettext("rule set v%(rule_set_version)s has no rules") % {"rule_set_version": rule_set.version},
                rule_set_id=rule_set_id,
            )
        for spec in specs:
            rule_check(spec)
        previous = RuleSet.objects.select_for_update().filter(status=RuleSetStatus.PUBLISHED).first()
        if previous is not None:
            previous.status = RuleSetStatus.RETIRED
            previous.save(update_fields=["status"])
        rule_set.status = RuleSetStatus.PUBLISHED
        rule_set.published_at = now
        rule_set.published_by = actor
        rule_set.save(update_fields=["status", "published_at", "published_by"])
        audit_record(
            RULESET_PUBLISH.entry(
                rule_set,
                actor=actor,
                system_actor="" if actor is not None else system_actor,
                from_state=RuleSetStatus.DRAFT,
                to_state=RuleSetStatus.PUBLISHED,
                payload={
                    "version": rule_set.version,
                    "retired": previous.version if previous else None,
                    "rules": [s.name for s in specs],
                    "digest": ruleset_digest(specs),
                    "authors": sorted(ruleset_authors(rule_set)),
                },
            )
        )
    return rule_set


def ruleset_digest(specs: Sequence[RuleSpec]) -> str:
    """A SHA-256 over the rules' canonical JSON: what exactly was published."""
    import hashlib

    canonical = json.dumps(
        [
            {f: getattr(s, f) if f != "parameters" else dict(s.parameters) for f in _RULE_FIELDS}
            for s in sorted(specs, key=lambda s: s.name)
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


_compiled: dict[int, list[CompiledRule]] = {}


def published_rules() -> tuple[RuleSet, list[CompiledRule]] | None:
    """The rule set in force and its compiled rules (compiled once per process and version: published sets
    never change)."""
    rule_set = RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).first()
    if rule_set is None:
        return None
    if rule_set.pk not in _compiled:
        _compiled[rule_set.pk] = ruleset_compile([spec_of(r) for r in rule_set.rules.all()])
    return rule_set, _compiled[rule_set.pk]


def _ruleset_file_read(path: Path) -> dict[str, Any]:
    """A rule-set file's JSON, bounded like every JSON from outside (core.jsonparse: a file nested thousands deep is
    refused, not a RecursionError), with its shape checked before anything is written."""
    try:
        data = json_loads(path.read_text(), max_depth=settings.WORKOUT_JSON_MAX_DEPTH)
    except JsonInputError as error:
        raise RuleValidationError(gettext("%(path)s: %(problem)s") % {"path": path, "problem": error.message}) from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("rules"), list):
        raise RuleValidationError(
            gettext('%(path)s: a rule set is an object with "name" (text) and "rules" (a list)') % {"path": path}
        )
    return data


def ruleset_load(
    path: Path = DEFAULT_RULES, *, publish: bool = False, system_actor: str = "setup", actor: User | None = None
) -> RuleSet:
    """A rule set from a JSON file ({"name", "description", "rules": [...]}), as a draft written by `actor` (else
    the system actor), optionally published by the system actor (only as an installation's first policy). All or
    nothing: a refused publication leaves no draft behind."""
    data = _ruleset_file_read(path)
    with transaction.atomic():
        rule_set = ruleset_create(
            name=data["name"],
            description=data.get("description", ""),
            rules=data["rules"],
            actor=actor,
            system_actor=system_actor,
        )
        if publish:
            rule_set = ruleset_publish(rule_set_id=rule_set.pk, actor=None, system_actor=system_actor)
    return rule_set

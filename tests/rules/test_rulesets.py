"""Rule sets: drafts checked rule by rule, publishing by a senior officer only, a published set never changes,
exactly one in force, the default set loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import audit_verify
from core.models import AuditEvent
from rules.models import RuleSet, RuleSetStatus
from rules.reference import rules_reference
from rules.schema import FACTS
from rules.services import (
    DEFAULT_RULES,
    PublishPermissionError,
    RuleSetNotEditableError,
    RuleValidationError,
    published_rules,
    rule_save,
    ruleset_clone,
    ruleset_create,
    ruleset_digest,
    ruleset_load,
    ruleset_publish,
    spec_of,
)

SMALL = {
    "name": "small",
    "priority": 10,
    "condition": "shortfall_pct < 0.05",
    "action": "extend_term",
    "parameters": {"months": "3"},
}


def _senior() -> User:
    user = User.objects.create_user("senior", password="x")
    user.user_permissions.add(Permission.objects.get(codename="publish_ruleset"))
    return User.objects.get(pk=user.pk)  # permissions are cached per instance


def _editor() -> User:
    return User.objects.get_or_create(username="editor")[0]


@pytest.mark.django_db
def test_the_default_rule_set_loads_with_twenty_rules_that_all_check() -> None:
    rule_set = ruleset_load(DEFAULT_RULES, publish=True)
    assert rule_set.status == RuleSetStatus.PUBLISHED
    assert rule_set.rules.count() == 20
    published = published_rules()
    assert published is not None
    assert [r.spec.name for r in published[1]][:3] == [
        "large_exposure_escalates",
        "repeat_restructuring_escalates",
        "underwater_without_means_liquidates",
    ]
    actions = {r.action for r in rule_set.rules.all()}
    assert actions == {
        "escalate_to_senior",
        "liquidate",
        "extend_term",
        "demand_collateral",
        "change_rate",
        "reduce_position",
        "grace_period",
        "haircut_principal",
    }


@pytest.mark.django_db
def test_publishing_needs_the_senior_permission_and_is_one_audit_event() -> None:
    draft = ruleset_create(name="policy", rules=[SMALL])
    officer = User.objects.create_user("officer", password="x")
    with pytest.raises(PublishPermissionError, match="may not publish"):
        ruleset_publish(rule_set_id=draft.pk, actor=officer)
    assert RuleSet.objects.get(pk=draft.pk).status == RuleSetStatus.DRAFT

    senior = _senior()
    published = ruleset_publish(rule_set_id=draft.pk, actor=senior)

    assert (published.status, published.published_by) == (RuleSetStatus.PUBLISHED, senior)
    event = AuditEvent.objects.get(action="ruleset.publish")
    assert (event.object_id, event.actor_id, event.to_state) == (draft.pk, senior.pk, "published")
    assert event.payload["digest"] == ruleset_digest([spec_of(r) for r in draft.rules.all()])
    assert audit_verify().ok


@pytest.mark.django_db
def test_a_published_set_never_changes_and_is_edited_by_cloning() -> None:
    first = ruleset_load(DEFAULT_RULES, publish=True)
    with pytest.raises(RuleSetNotEditableError, match="never changes"):
        rule_save(rule_set_id=first.pk, actor=_editor(), rule=SMALL)
    with pytest.raises(RuleSetNotEditableError):
        rule_save(
            rule_set_id=first.pk, actor=_editor(), rule={**SMALL, "name": "illiquid_term"}, replaces="illiquid_term"
        )

    draft = ruleset_clone(rule_set_id=first.pk)
    assert (draft.status, draft.cloned_from_id, draft.version) == (RuleSetStatus.DRAFT, first.pk, first.version + 1)
    assert sorted(draft.rules.values_list("name", flat=True)) == sorted(first.rules.values_list("name", flat=True))
    rule_save(rule_set_id=draft.pk, actor=_editor(), rule={**SMALL, "parameters": {"months": "4"}})
    ruleset_publish(rule_set_id=draft.pk, actor=_senior())  # a set is in force: a person publishes the next

    # the first is retired, unchanged; exactly one set is in force
    assert RuleSet.objects.get(pk=first.pk).status == RuleSetStatus.RETIRED
    assert first.rules.count() == 20
    assert list(RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED)) == [RuleSet.objects.get(pk=draft.pk)]
    with pytest.raises(IntegrityError), transaction.atomic():
        RuleSet.objects.filter(pk=first.pk).update(status=RuleSetStatus.PUBLISHED, published_at=timezone.now())


@pytest.mark.django_db
def test_a_bad_rule_is_refused_when_saved_naming_the_rule_the_field_and_the_place() -> None:
    draft = ruleset_create(name="policy", rules=[SMALL])
    cases = [
        ({**SMALL, "condition": "shortfal < 0.05"}, "condition", "shortfal"),
        ({**SMALL, "condition": "credit_tier > 1"}, "condition", None),
        ({**SMALL, "parameters": {"months": "credit_tier"}}, "months", None),
        ({**SMALL, "parameters": {}}, "months", "needs"),
        ({**SMALL, "parameters": {"months": "3", "weeks": "2"}}, "weeks", "takes no parameter"),
        ({**SMALL, "parameters": {"months": "3", "schedule": "balloon"}}, "schedule", "not one of"),
        ({**SMALL, "action": "forgive_everything"}, "action", "not one of"),
    ]
    for rule, field, words in cases:
        with pytest.raises(RuleValidationError) as caught:
            rule_save(rule_set_id=draft.pk, actor=_editor(), rule={**rule, "name": "bad"})
        assert caught.value.context["rule"] == "bad"
        assert caught.value.context["field"] == field, (rule, caught.value)
        assert "'bad'" in str(caught.value)
        if words:
            assert words in str(caught.value)
    # the expression errors say where: a position in the text
    with pytest.raises(RuleValidationError) as caught:
        rule_save(
            rule_set_id=draft.pk,
            actor=_editor(),
            rule={**SMALL, "name": "bad", "condition": "debt > 0 and shortfal < 0.05"},
        )
    assert caught.value.context["position"] == 13
    assert draft.rules.count() == 1  # nothing half-saved
    with pytest.raises(RuleValidationError, match="two rules have this name"):
        rule_save(rule_set_id=draft.pk, actor=_editor(), rule=SMALL)


def test_the_default_rules_file_is_valid_json_with_unique_names() -> None:
    data = json.loads(DEFAULT_RULES.read_text())
    names = [r["name"] for r in data["rules"]]
    assert len(names) == len(set(names)) == 20


def test_the_rule_writers_reference_is_generated_from_the_code() -> None:
    # if this fails: `manage.py rules_reference --write` and commit docs/rules.md
    doc = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
    assert doc.read_text() == rules_reference()
    for fact in FACTS:
        assert f"`{fact.name}`" in doc.read_text()


@pytest.mark.django_db
def test_a_refused_publication_from_a_file_leaves_no_draft_behind() -> None:
    ruleset_load(DEFAULT_RULES, publish=True)  # the installation's first policy
    sets, events = RuleSet.objects.count(), AuditEvent.objects.count()

    with pytest.raises(PublishPermissionError, match="a rule set is in force"):
        ruleset_load(DEFAULT_RULES, publish=True)

    assert (RuleSet.objects.count(), AuditEvent.objects.count()) == (sets, events)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[" * 20_000 + "]" * 20_000, "levels deep"),
        ('{"name": "x", "rules": [' + "9" * 5_000 + "]}", "a number of 5000 characters"),
        ('["not", "an", "object"]', 'a rule set is an object with "name" (text) and "rules" (a list)'),
        ('{"rules": []}', 'a rule set is an object with "name" (text) and "rules" (a list)'),
        ("{", "not valid JSON"),
    ],
)
@pytest.mark.django_db
def test_a_rule_set_file_that_is_not_one_is_refused_naming_the_problem_and_writes_nothing(
    tmp_path: Path, content: str, problem: str
) -> None:
    """Issue 14: the rules_load file is JSON from outside like any other, read with the same bounds (a file nested
    20,000 deep was a RecursionError, a traceback)."""
    path = tmp_path / "rules.json"
    path.write_text(content)
    events = AuditEvent.objects.count()

    with pytest.raises(CommandError) as raised:
        call_command("rules_load", str(path))

    assert problem in str(raised.value)
    assert str(path) in str(raised.value)
    assert not RuleSet.objects.exists()
    assert AuditEvent.objects.count() == events

"""The rules pages: who may see and do what (compliance reads, officers edit drafts, seniors publish), the set in
force and the list of sets, cloning, the rule editor checking as you type (errors with their position), saving,
deleting, the dry run, publishing and its audit event; fixed query counts."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, TestCase, override_settings

from core.models import AuditEvent
from core.roles import CLIENT, COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Case
from restructuring.services.case_sweep import cases_apply_risk
from rules.models import Rule, RuleSet, RuleSetStatus
from rules.services import DEFAULT_RULES, ruleset_clone, ruleset_create, ruleset_load, ruleset_publish
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import signed_in, staff_user

pytestmark = [
    pytest.mark.django_db,
]

EXTEND = {
    "name": "small_shortfall_extends",
    "priority": 20,
    "condition": "shortfall_pct < 0.05 and credit_tier in ['A', 'B']",
    "action": "extend_term",
    "parameters": {"months": "3"},
    "package": "short_extension",
}
DEMAND = {
    "name": "concentrated_demands",
    "priority": 10,
    "condition": "concentration_top1 > 0.6",
    "action": "demand_collateral",
    "parameters": {"amount": "shortfall * 1.2"},
    "package": "concentration",
    "stop_processing": True,
}


@pytest.fixture
def published() -> RuleSet:
    rule_set = ruleset_create(name="Policy", rules=[EXTEND, DEMAND], description="the policy in force")
    return ruleset_publish(rule_set_id=rule_set.pk, actor=None, system_actor="setup")


@pytest.fixture
def draft(published: RuleSet) -> RuleSet:
    return ruleset_clone(rule_set_id=published.pk)


@pytest.fixture
def officer() -> User:
    return staff_user("otto", CREDIT_OFFICER)


@pytest.fixture
def senior() -> User:
    return staff_user("sena", SENIOR_CREDIT_OFFICER)


def _form(rule: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The editor's POST data for a rule."""
    data = {**rule, **changes}
    post = {
        "name": data["name"],
        "priority": data["priority"],
        "condition": data["condition"],
        "action": data["action"],
        "package": data.get("package", ""),
        "description": data.get("description", ""),
        **{f"p_{k}": v for k, v in data.get("parameters", {}).items()},
    }
    if data.get("stop_processing"):
        post["stop_processing"] = "on"
    return post


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# ------------------------------------------------------------------------------------------ permissions


def _urls(draft: RuleSet) -> dict[str, str]:
    rule = draft.rules.get(name=EXTEND["name"])
    base = f"/rules/{draft.pk}/"
    return {
        "clone": f"{base}clone/",
        "add": f"{base}rules/new/",
        "edit": f"{base}rules/{rule.pk}/",
        "delete": f"{base}rules/{rule.pk}/delete/",
        "check": f"{base}check/",
        "dry-run": f"{base}dry-run/",
        "publish": f"{base}publish/",
    }


def test_anonymous_is_sent_to_sign_in(client: Client, draft: RuleSet) -> None:
    for url in ["/rules/", f"/rules/{draft.pk}/", _urls(draft)["add"]]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={url}"
    for url in _urls(draft).values():
        assert client.post(url)["Location"].startswith("/login/?next="), url


def test_a_client_sees_no_rules(draft: RuleSet) -> None:
    browser = signed_in(staff_user("carl", CLIENT))
    assert browser.get("/rules/").status_code == 403
    assert browser.get(f"/rules/{draft.pk}/").status_code == 403
    assert browser.post(_urls(draft)["check"], _form(EXTEND)).status_code == 403


def test_compliance_reads_the_rules_and_changes_nothing(draft: RuleSet) -> None:
    # given
    browser = signed_in(staff_user("rita", COMPLIANCE))

    # when / then it reads
    index = browser.get("/rules/")
    detail = browser.get(f"/rules/{draft.pk}/")
    assert (index.status_code, detail.status_code) == (200, 200)
    for page in (index, detail):
        assert "Clone into a new draft" not in page.content.decode()
        assert "Publish v" not in page.content.decode()
        assert "Add a rule" not in page.content.decode()
    # and every change is refused, as is the editor
    urls = _urls(draft)
    assert browser.get(urls["add"]).status_code == 403
    assert browser.get(urls["edit"]).status_code == 403
    for name, url in urls.items():
        assert browser.post(url, _form(EXTEND)).status_code == 403, name
    assert RuleSet.objects.count() == 2
    assert draft.rules.count() == 2
    assert RuleSet.objects.get(pk=draft.pk).status == RuleSetStatus.DRAFT


def test_an_officer_edits_a_draft_but_may_not_publish_it(draft: RuleSet, officer: User) -> None:
    browser = signed_in(officer)

    page = browser.get(f"/rules/{draft.pk}/").content.decode()
    refused = browser.post(f"/rules/{draft.pk}/publish/")

    assert "Add a rule" in page
    assert "Dry run" in page
    assert "Publish v" not in page
    assert "A senior credit officer publishes drafts." in page
    assert refused.status_code == 403
    assert RuleSet.objects.get(pk=draft.pk).status == RuleSetStatus.DRAFT
    assert not AuditEvent.objects.filter(action="ruleset.publish", actor=officer).exists()


def test_changes_need_the_csrf_token(draft: RuleSet, officer: User) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = signed_in(officer).cookies

    refused = strict.post(_urls(draft)["delete"])
    page = strict.get(f"/rules/{draft.pk}/")
    token = str(page.context["csrf_token"])
    accepted = strict.post(_urls(draft)["delete"], {"csrfmiddlewaretoken": token})

    assert refused.status_code == 403
    assert accepted.status_code == 302
    assert list(draft.rules.values_list("name", flat=True)) == [DEMAND["name"]]


# ---------------------------------------------------------------------------------------- reading


def test_the_index_shows_the_set_in_force_in_running_order_and_every_set(draft: RuleSet) -> None:
    browser = signed_in(staff_user("rita", COMPLIANCE))

    response = browser.get("/rules/")

    page = response.content.decode()
    assert response.context["rule_set"].version == 1
    assert [r.name for r in response.context["rules"]] == ["concentrated_demands", "small_shortfall_extends"]
    assert page.index("concentrated_demands") < page.index("small_shortfall_extends")  # priority 10 before 20
    assert "In force: Policy v1" in page
    assert "<code>concentration_top1 &gt; 0.6</code>" in page
    assert "<code>amount = shortfall * 1.2</code>" in page
    assert "Demand collateral" in page
    assert ">concentration<" in page
    assert ">stop<" in page
    assert [(s.version, s.status, s.rule_count) for s in response.context["sets"]] == [
        (2, "draft", 2),
        (1, "published", 2),
    ]


def test_without_a_set_in_force_the_index_says_so() -> None:
    browser = signed_in(staff_user("rita", COMPLIANCE))
    assert "No rule set is in force" in browser.get("/rules/").content.decode()


def test_the_pages_make_the_same_queries_whatever_the_set_holds(
    published: RuleSet, django_assert_num_queries: Any
) -> None:
    browser = signed_in(staff_user("rita", COMPLIANCE))
    big = ruleset_load(DEFAULT_RULES)  # twenty rules, a draft

    # session, user, device, groups, two permission queries; the sets (with their rule counts), the rules; the
    # session saved (three statements in a test's transaction); a set's page also reads its authors (one query)
    with django_assert_num_queries(11):
        browser.get("/rules/")
    with django_assert_num_queries(12):
        assert len(browser.get(f"/rules/{published.pk}/").context["rules"]) == 2
    with django_assert_num_queries(12):
        assert len(browser.get(f"/rules/{big.pk}/").context["rules"]) == 20


# ------------------------------------------------------------------------------------------- editing


def test_an_officer_clones_the_set_in_force_into_a_draft(published: RuleSet, officer: User) -> None:
    browser = signed_in(officer)

    response = browser.post(f"/rules/{published.pk}/clone/", follow=True)

    draft = RuleSet.objects.get(version=2)
    assert response.redirect_chain == [(f"/rules/{draft.pk}/", 302)]
    assert (draft.status, draft.cloned_from_id, draft.created_by) == ("draft", published.pk, officer)
    assert list(draft.rules.order_by("name").values_list("name", flat=True)) == [DEMAND["name"], EXTEND["name"]]
    assert _messages(response) == ["Draft v2 cloned from v1: edit it, dry-run it, publish it."]


def test_a_rule_is_checked_as_it_is_typed(draft: RuleSet, officer: User) -> None:
    browser = signed_in(officer)
    check = _urls(draft)["check"]
    headers = {"HX-Request": "true", "HX-Trigger-Name": "condition"}

    # an unknown fact: named, with the character where it is and a caret under it
    typo = browser.post(
        check, _form(EXTEND, name="new", condition="debt > 0 and shortfal < 0.05"), headers=headers
    ).content.decode()
    assert 'data-field="condition" data-position="13"' in typo
    assert "rule &#x27;new&#x27;, condition, at character 13 (&#x27;shortfal&#x27;): unknown fact" in typo
    assert '<pre class="caret">debt &gt; 0 and shortfal &lt; 0.05\n             ^</pre>' in typo

    # on a condition of several lines, the caret is under the line where the problem is
    lines = browser.post(check, _form(EXTEND, name="new", condition="debt > 0\nand shortfal < 0.05")).content.decode()
    assert '<pre class="caret">and shortfal &lt; 0.05\n    ^</pre>' in lines

    # what the form itself refuses, named
    priority = browser.post(check, _form(EXTEND, name="new", priority="first")).content.decode()
    assert 'data-field="priority"' in priority
    assert "priority: Enter a whole number." in priority

    # a parameter of the wrong type: named, with its position in the parameter
    wrong = browser.post(check, _form(EXTEND, name="new", parameters={"months": "3 + credit_tier"})).content.decode()
    assert 'data-field="months" data-position="' in wrong
    assert "rule &#x27;new&#x27;, months, at character" in wrong

    # a parameter the action needs, missing
    missing = browser.post(check, _form(EXTEND, name="new", parameters={})).content.decode()
    assert 'data-field="months">' in missing
    assert "extend_term needs &#x27;months&#x27;" in missing

    # a name the draft already has (the rule being edited keeps its own)
    taken = browser.post(check, _form(EXTEND)).content.decode()
    assert "two rules have this name" in taken
    kept = browser.post(check, {**_form(EXTEND), "replaces": EXTEND["name"]}).content.decode()
    assert "OK" in kept

    # a sound rule: OK, with the facts it reads
    sound = browser.post(check, _form(EXTEND, name="new", parameters={"months": "debt > 1000 ? 6 : 3"}))
    assert sound.status_code == 200
    assert (
        "OK: the rule checks. Reads <code>credit_tier</code>, <code>debt</code>, <code>shortfall_pct</code>."
        in sound.content.decode()
    )


def test_choosing_another_action_brings_its_parameter_fields(draft: RuleSet, officer: User) -> None:
    browser = signed_in(officer)

    response = browser.post(
        _urls(draft)["check"],
        _form(EXTEND, name="new", action="reduce_position", parameters={}),
        headers={"HX-Request": "true", "HX-Trigger-Name": "action"},
    )

    page = response.content.decode()
    assert '<fieldset id="rule-parameters" hx-swap-oob="true">' in page
    assert 'name="p_fraction"' in page
    assert 'name="p_which"' in page
    assert 'name="p_months"' not in page
    assert "reduce_position needs &#x27;fraction&#x27;" in page  # and what it still lacks


def test_the_editor_form_posts_as_you_type(draft: RuleSet, officer: User) -> None:
    page = signed_in(officer).get(_urls(draft)["add"]).content.decode()

    assert f'hx-post="/rules/{draft.pk}/check/"' in page
    assert 'hx-trigger="keyup changed delay:300ms, change"' in page
    assert 'hx-target="#rule-check"' in page
    assert 'name="p_months"' in page  # the default action's parameters
    assert "<code>shortfall_pct</code>" in page  # the facts, for reference


def test_adding_a_rule_saves_it_or_names_the_problem(draft: RuleSet, officer: User) -> None:
    browser = signed_in(officer)
    add = _urls(draft)["add"]
    new = {**EXTEND, "name": "weak_tier_longer", "condition": "credit_tier == 'C'", "parameters": {"months": "12"}}

    refused = browser.post(add, _form(new, condition="credit_tier == 'C' and"))
    saved = browser.post(add, _form(new, package=""), follow=True)

    assert refused.status_code == 200
    assert "condition, at character" in str(refused.context["form"].errors["condition"])
    assert saved.redirect_chain == [(f"/rules/{draft.pk}/", 302)]
    assert _messages(saved) == ["Rule 'weak_tier_longer' saved in draft v2."]
    rule = draft.rules.get(name="weak_tier_longer")
    assert (rule.condition, rule.parameters, rule.package) == ("credit_tier == 'C'", {"months": "12"}, rule.name)


def test_editing_a_rule_replaces_it(draft: RuleSet, officer: User) -> None:
    browser = signed_in(officer)
    rule = draft.rules.get(name=DEMAND["name"])
    edit = f"/rules/{draft.pk}/rules/{rule.pk}/"

    form = browser.get(edit).context["form"]
    response = browser.post(edit, {**_form(DEMAND, parameters={"amount": "shortfall * 1.5"}), "replaces": rule.name})

    assert (form["condition"].value(), form["p_amount"].value()) == ("concentration_top1 > 0.6", "shortfall * 1.2")
    assert response.status_code == 302
    edited = draft.rules.get(name=DEMAND["name"])
    assert (edited.parameters, edited.stop_processing) == ({"amount": "shortfall * 1.5"}, True)
    assert draft.rules.count() == 2


def test_deleting_a_rule(draft: RuleSet, officer: User) -> None:
    response = signed_in(officer).post(_urls(draft)["delete"], follow=True)

    assert _messages(response) == ["Rule 'small_shortfall_extends' deleted from draft v2."]
    assert list(draft.rules.values_list("name", flat=True)) == [DEMAND["name"]]


def test_a_set_that_is_not_a_draft_is_never_edited(published: RuleSet, officer: User) -> None:
    browser = signed_in(officer)
    urls = _urls(published)

    for response in (
        browser.get(urls["add"], follow=True),
        browser.post(urls["edit"], _form(EXTEND, condition="debt > 0"), follow=True),
        browser.post(urls["delete"], follow=True),
    ):
        assert response.redirect_chain == [(f"/rules/{published.pk}/", 302)]
        assert _messages(response) == ["Rule set v1 is published: it never changes; clone it into a new draft."]
    assert published.rules.get(name=EXTEND["name"]).condition == EXTEND["condition"]
    assert published.rules.count() == 2


# ------------------------------------------------------------------------------------- dry run, publish


@override_settings(WORKOUT_FEASIBILITY_PATHS=500)
def test_the_dry_run_shows_what_the_draft_changes(officer: User) -> None:
    # given the default policy in force, a case in margin call with its feasibility, and a draft, edited in the
    # pages, that asks concentrated books for more collateral and adds an extension for them
    policy = ruleset_load(DEFAULT_RULES, publish=True)
    margin_account = account("CALL", btc(), band="margin_call")
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    case = Case.objects.get(account=margin_account)
    draft = ruleset_clone(rule_set_id=policy.pk)
    browser = signed_in(officer)
    collateral = draft.rules.get(name="concentrated_collateral")
    more_collateral = {
        **_form(
            {
                "name": collateral.name,
                "priority": collateral.priority,
                "condition": collateral.condition,
                "action": collateral.action,
                "parameters": {"amount": "shortfall * 1.5"},
                "package": collateral.package,
            }
        ),
        "replaces": collateral.name,
    }
    extension = {
        "name": "concentrated_short",
        "priority": 45,
        "condition": "concentration_top1 > 0.9",
        "action": "extend_term",
        "parameters": {"months": "6", "schedule": "level"},
        "package": "short_concentrated",
    }
    assert browser.post(f"/rules/{draft.pk}/rules/{collateral.pk}/", more_collateral).status_code == 302
    assert browser.post(f"/rules/{draft.pk}/rules/new/", _form(extension)).status_code == 302

    # when
    response = browser.post(f"/rules/{draft.pk}/dry-run/")

    # then the totals, and the case with what it gains, loses and changes
    page = response.content.decode()
    trial = response.context["trial"]
    assert response.status_code == 200
    assert (trial.rule_set_version, trial.against_version, trial.cases) == (draft.version, policy.version, 1)
    assert (trial.added, trial.removed, trial.changed) == (1, 0, 1)
    assert f"Dry run of v{draft.version} against v{policy.version} (in force)" in page
    [(diff, account_code, change)] = response.context["differences"]
    assert (diff.case_id, account_code, diff.added, diff.changed) == (
        case.pk,
        "CALL",
        ["short_concentrated"],
        ["concentration"],
    )
    assert change == diff.after - diff.before
    assert f"<td>case {case.pk}</td>" in page or f">case {case.pk}</a>" in page
    assert f'<td class="num">{trial.recovery_before}</td>' in page
    assert f'<td class="num">{trial.recovery_after}</td>' in page
    assert "Publish v" not in page  # an officer


def test_the_dry_run_of_a_set_against_itself_changes_nothing(published: RuleSet, officer: User) -> None:
    response = signed_in(officer).post(f"/rules/{published.pk}/dry-run/")

    assert response.status_code == 200
    assert response.context["trial"].cases == 0
    assert "No case would get other proposals." in response.content.decode()


def test_a_senior_publishes_a_draft_and_it_is_audited(published: RuleSet, draft: RuleSet, senior: User) -> None:
    browser = signed_in(senior)
    assert f"Publish v{draft.version}" in browser.get(f"/rules/{draft.pk}/").content.decode()

    response = browser.post(f"/rules/{draft.pk}/publish/", follow=True)

    assert response.redirect_chain == [("/rules/", 302)]
    assert _messages(response) == ["Rule set v2 is in force; the previous set is retired."]
    assert RuleSet.objects.get(pk=draft.pk).status == RuleSetStatus.PUBLISHED
    assert RuleSet.objects.get(pk=published.pk).status == RuleSetStatus.RETIRED
    event = AuditEvent.objects.get(action="ruleset.publish", object_id=draft.pk)
    assert (event.actor, event.from_state, event.to_state) == (senior, "draft", "published")
    assert (event.payload["version"], event.payload["retired"]) == (2, 1)
    assert response.context["rule_set"].pk == draft.pk  # the index shows the new set in force


def test_publishing_a_set_that_is_not_a_draft_is_refused(published: RuleSet, draft: RuleSet, senior: User) -> None:
    browser = signed_in(senior)
    events = AuditEvent.objects.count()

    again = browser.post(f"/rules/{published.pk}/publish/", follow=True)

    assert again.redirect_chain == [(f"/rules/{published.pk}/", 302)]
    [message] = _messages(again)
    assert message.startswith("Not published: rule set v1 is published: it never changes")
    assert RuleSet.objects.get(pk=published.pk).status == RuleSetStatus.PUBLISHED
    assert RuleSet.objects.get(pk=draft.pk).status == RuleSetStatus.DRAFT
    assert AuditEvent.objects.count() == events


def test_publishing_an_empty_draft_is_refused(draft: RuleSet, senior: User) -> None:
    Rule.objects.filter(rule_set=draft).delete()

    response = signed_in(senior).post(f"/rules/{draft.pk}/publish/", follow=True)

    assert _messages(response) == ["Not published: rule set v2 has no rules"]
    assert RuleSet.objects.get(pk=draft.pk).status == RuleSetStatus.DRAFT


def test_a_senior_who_edited_a_draft_may_not_publish_it(published: RuleSet, senior: User, officer: User) -> None:
    # given a draft the senior cloned and edited (finding 2 of issue 13: he published his own rule)
    browser = signed_in(senior)
    browser.post(f"/rules/{published.pk}/clone/")
    draft = RuleSet.objects.get(status=RuleSetStatus.DRAFT)
    assert browser.post(f"/rules/{draft.pk}/rules/new/", _form({**EXTEND, "name": "extend_more"})).status_code == 302
    page = browser.get(f"/rules/{draft.pk}/").content.decode()
    assert "You wrote or edited this draft: another senior credit officer publishes it." in page
    assert f"Publish v{draft.version}" not in page
    assert f"Written or edited by: {senior.username}." in page
    events = AuditEvent.objects.filter(action="ruleset.publish").count()

    # when he publishes it all the same
    response = browser.post(f"/rules/{draft.pk}/publish/", follow=True)

    # then it is refused, and another senior, who wrote none of it, publishes it
    [message] = _messages(response)
    assert message == (
        f"Not published: {senior.username} wrote or edited rule set v{draft.version}: another senior credit officer "
        "must publish it"
    )
    assert RuleSet.objects.get(pk=draft.pk).status == RuleSetStatus.DRAFT
    assert AuditEvent.objects.filter(action="ruleset.publish").count() == events
    other = staff_user("sofia", SENIOR_CREDIT_OFFICER)
    assert signed_in(other).post(f"/rules/{draft.pk}/publish/").status_code == 302
    assert RuleSet.objects.get(pk=draft.pk).status == RuleSetStatus.PUBLISHED
    rule_events = AuditEvent.objects.filter(object_id=draft.pk, action__startswith="ruleset.")
    assert list(rule_events.values_list("action", "actor__username")) == [
        ("ruleset.clone", senior.username),
        ("ruleset.rule_save", senior.username),
        ("ruleset.publish", "sofia"),
    ]

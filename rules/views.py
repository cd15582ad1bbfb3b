"""The rules pages: the set in force and every other, drafts cloned from a set and edited rule by rule (each
rule checked as it is typed, then again when saved), and publishing (a senior credit officer). Officers edit;
compliance reads; every change goes through rules.services, which refuses to touch a set that is not a draft.
A draft's dry run against the set in force is on the same pages, but its view is restructuring's
(restructuring/views/rules_trial.py): it runs the cases, which rules does not import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.access import staff_view
from core.errors import WorkoutError
from core.web import refusal_show, service_run
from rules.actions import ACTIONS
from rules.forms import PARAMETER_PREFIX, RuleForm, check_url
from rules.models import Rule, RuleSet, RuleSetStatus
from rules.schema import FACTS
from rules.services import (
    RuleValidationError,
    rule_check,
    rule_delete,
    rule_save,
    ruleset_clone,
    ruleset_publish,
    spec_of,
)

VIEW = "rules.view_ruleset"
ADD = "rules.add_ruleset"
CHANGE = "rules.change_ruleset"
PUBLISH = "rules.publish_ruleset"


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)  # staff_view has let only a signed-in user through


def _sets() -> list[RuleSet]:
    return list(
        RuleSet.objects.select_related("created_by", "published_by", "cloned_from")
        .annotate(rule_count=Count("rules"))
        .order_by("-version")
    )


@require_GET
@staff_view(VIEW)
def rules_index(request: HttpRequest) -> HttpResponse:
    """The set in force, its rules in the order they run, and every set with its status."""
    sets = _sets()
    published = next((s for s in sets if s.status == RuleSetStatus.PUBLISHED), None)
    rules = list(published.rules.order_by("priority", "name")) if published is not None else []
    return render(request, "rules/index.html", {"sets": sets, "rule_set": published, "rules": rules})


@require_GET
@staff_view(VIEW)
def ruleset_detail(request: HttpRequest, rule_set_id: int) -> HttpResponse:
    rule_set = get_object_or_404(
        RuleSet.objects.select_related("created_by", "published_by", "cloned_from"), pk=rule_set_id
    )
    rules = list(rule_set.rules.order_by("priority", "name"))
    # Its authors (creator and editors), in one query: none of them may publish it.
    authors = dict(
        User.objects.filter(Q(pk=rule_set.created_by_id) | Q(pk__in=rule_set.editors.values("pk")))
        .order_by("username")
        .values_list("pk", "username")
    )
    context = {
        "rule_set": rule_set,
        "rules": rules,
        "authors": list(authors.values()),
        "i_wrote_it": request.user.pk in authors,
    }
    return render(request, "rules/ruleset.html", context)


@require_POST
@staff_view(VIEW, ADD)
def ruleset_clone_view(request: HttpRequest, rule_set_id: int) -> HttpResponse:
    source = get_object_or_404(RuleSet, pk=rule_set_id)
    draft = ruleset_clone(rule_set_id=source.pk, actor=_user(request))
    messages.success(
        request,
        gettext("Draft v%(draft)s cloned from v%(source)s: edit it, dry-run it, publish it.")
        % {"draft": draft.version, "source": source.version},
    )
    return redirect("rules-set", draft.pk)


def _editable(request: HttpRequest, rule_set: RuleSet) -> HttpResponse | None:
    """A redirect with the reason when the set is not a draft (the service refuses too, under its lock)."""
    if rule_set.status == RuleSetStatus.DRAFT:
        return None
    messages.error(
        request,
        gettext("Rule set v%(version)s is %(status)s: it never changes; clone it into a new draft.")
        % {"version": rule_set.version, "status": str(rule_set.get_status_display()).lower()},
    )
    return redirect("rules-set", rule_set.pk)


def _rule_page(request: HttpRequest, rule_set: RuleSet, rule: Rule | None) -> HttpResponse:
    if refused := _editable(request, rule_set):
        return refused
    url = check_url(rule_set.pk)
    if request.method == "POST":
        form = RuleForm(request.POST, check_url=url)
        if form.is_valid():
            try:
                saved = rule_save(
                    rule_set_id=rule_set.pk,
                    rule=form.rule(),
                    actor=_user(request),
                    replaces=rule.name if rule is not None else None,
                )
            except RuleValidationError as error:
                form.add_rule_error(error)
            except WorkoutError as error:  # not a draft any more (published meanwhile)
                refusal_show(request, error)
                return redirect("rules-set", rule_set.pk)
            else:
                messages.success(
                    request,
                    gettext("Rule %(name)s saved in draft v%(version)s.")
                    % {"name": repr(saved.name), "version": rule_set.version},
                )
                return redirect("rules-set", rule_set.pk)
    else:
        form = RuleForm(initial=RuleForm.initial_of(rule) if rule is not None else None, check_url=url)
    return render(
        request,
        "rules/rule_form.html",
        {
            "rule_set": rule_set,
            "rule": rule,
            "form": form,
            "facts": FACTS,
            "actions": ACTIONS,
            "check_url": url,
        },
    )


@require_http_methods(["GET", "POST"])
@staff_view(VIEW, CHANGE)
def rule_add(request: HttpRequest, rule_set_id: int) -> HttpResponse:
    return _rule_page(request, get_object_or_404(RuleSet, pk=rule_set_id), None)


@require_http_methods(["GET", "POST"])
@staff_view(VIEW, CHANGE)
def rule_edit(request: HttpRequest, rule_set_id: int, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(Rule.objects.select_related("rule_set"), pk=rule_id, rule_set_id=rule_set_id)
    return _rule_page(request, rule.rule_set, rule)


@require_POST
@staff_view(VIEW, CHANGE)
def rule_delete_view(request: HttpRequest, rule_set_id: int, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(Rule.objects.select_related("rule_set"), pk=rule_id, rule_set_id=rule_set_id)
    if refused := _editable(request, rule.rule_set):
        return refused

    def act() -> str:
        rule_delete(rule_set_id=rule_set_id, name=rule.name, actor=_user(request))
        return gettext("Rule %(name)s deleted from draft v%(version)s.") % {
            "name": repr(rule.name),
            "version": rule.rule_set.version,
        }

    service_run(request, act)
    return redirect("rules-set", rule_set_id)


@dataclass(frozen=True)
class CheckResult:
    """What the check endpoint shows: OK with the facts read, or the first problem, where it is."""

    ok: bool
    message: str = ""
    field: str = ""  # the form field's label ("condition", a parameter's name, "name"...)
    position: int | None = None
    line: str = ""  # the line of the text the position is in
    caret: str = ""  # spaces then "^" under the position
    facts_read: tuple[str, ...] = ()


def _located(message: str, field: str, text: str, position: int | None) -> CheckResult:
    if position is None:
        return CheckResult(ok=False, message=message, field=field)
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : end if end != -1 else len(text)]
    return CheckResult(
        ok=False, message=message, field=field, position=position, line=line, caret=" " * (position - start) + "^"
    )


def _check(form: RuleForm, rule_set: RuleSet, replaces: str) -> CheckResult:
    if not form.is_valid():
        name, errors = next(iter(form.errors.items()))
        field = name.removeprefix(PARAMETER_PREFIX)
        return CheckResult(ok=False, message=f"{field}: {' '.join(str(e) for e in errors)}", field=field)
    rule = form.rule()
    try:
        compiled = rule_check(spec_of(rule))
    except RuleValidationError as error:
        named = form.field_of(error) or ""
        text = str(form.cleaned_data.get(named) or "") if named else ""
        position = error.context.get("position")
        return _located(str(error), named.removeprefix(PARAMETER_PREFIX), text, position)
    others = rule_set.rules.exclude(name=replaces) if replaces else rule_set.rules.all()
    if others.filter(name=rule["name"]).exists():
        return CheckResult(ok=False, message=f"rule {rule['name']!r}, name: two rules have this name", field="name")
    return CheckResult(ok=True, facts_read=tuple(sorted(compiled.facts_read)))


@require_POST
@staff_view(VIEW, CHANGE)
def rule_check_view(request: HttpRequest, rule_set_id: int) -> HttpResponse:
    """Validation as you type (htmx): the rule as it stands in the form, checked without saving. When the action
    changed, its parameter fields come along (an out-of-band swap)."""
    rule_set = get_object_or_404(RuleSet, pk=rule_set_id)
    form = RuleForm(request.POST, check_url=check_url(rule_set.pk))
    result = _check(form, rule_set, request.POST.get("replaces", ""))
    trigger = getattr(request, "htmx", None)
    context: dict[str, Any] = {
        "result": result,
        "form": form,
        "parameters_changed": bool(trigger) and trigger.trigger_name == "action",  # type: ignore[union-attr]
    }
    return render(request, "rules/_check.html", context)


@require_POST
@staff_view(VIEW, PUBLISH)
def ruleset_publish_view(request: HttpRequest, rule_set_id: int) -> HttpResponse:
    rule_set = get_object_or_404(RuleSet, pk=rule_set_id)
    try:
        published = ruleset_publish(rule_set_id=rule_set.pk, actor=_user(request))
    except WorkoutError as error:  # not a draft, no rules, a rule no longer valid
        refusal_show(request, error, prefix="Not published: ")
        return redirect("rules-set", rule_set.pk)
    messages.success(
        request,
        gettext("Rule set v%(version)s is in force; the previous set is retired.") % {"version": published.version},
    )
    return redirect("rules")

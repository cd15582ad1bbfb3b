"""A draft rule set's dry run, from its page under /rules/: the set against the one in force over every open case
(restructuring/services/rules_trial.py, read-only). Here, next to the service it calls, and not in rules/views.py:
rules sits below restructuring and imports nothing of it (docs/architecture.md). Its URL stays under /rules/."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from core.access import staff_view
from restructuring.models import Case
from restructuring.services.rules_trial import ruleset_dry_run
from rules.models import RuleSet


@require_POST
@staff_view("rules.view_ruleset", "rules.change_ruleset")
def ruleset_dry_run_view(request: HttpRequest, rule_set_id: int) -> HttpResponse:
    """The set against the one in force over every open case with a feasibility report (read-only)."""
    rule_set = get_object_or_404(RuleSet, pk=rule_set_id)
    trial = ruleset_dry_run(rule_set_id=rule_set.pk)
    accounts = dict(
        Case.objects.filter(pk__in=[d.case_id for d in trial.differences]).values_list("pk", "account__code")
    )
    differences = [(d, accounts.get(d.case_id, ""), d.after - d.before) for d in trial.differences]
    return render(
        request,
        "rules/dry_run.html",
        {
            "rule_set": rule_set,
            "trial": trial,
            "differences": differences,
            "delta": trial.recovery_after - trial.recovery_before,
        },
    )

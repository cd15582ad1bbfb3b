"""The senior's desk actions (restructuring/services/assignment.py, which audits each): reassign one case from its
page; send an officer on leave, their open cases redistributed over the other officers in one action, and bring
them back; and the team page that lists the teams' officers with their workload.

The POSTs are open to the credit staff: the service itself refuses an officer who is not a senior, in words the
page shows ("alice may not reassign cases"), as it refuses a target on leave or a closed case."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST

from core.access import staff_view
from core.web import service_run
from restructuring.selectors.desk import team_members, workloads
from restructuring.selectors.lookups import case_exists
from restructuring.selectors.staff import staff_username
from restructuring.services.assignment import (
    AssignResult,
    case_reassign,
    officer_leave_end,
    officer_leave_start,
)


class ReassignForm(forms.Form):
    to = forms.CharField(label=gettext_lazy("Officer"), max_length=150)
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=500, required=False)


def _actor(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]  # staff_view let only a signed-in user through


def _form_errors(form: forms.Form) -> str:
    return "; ".join(
        f"{form.fields[name].label if name in form.fields else name}: {' '.join(str(e) for e in errors)}"
        for name, errors in form.errors.items()
    )


@staff_view("restructuring.view_case", "restructuring.draft_proposal")
@require_POST
def case_reassign_view(request: HttpRequest, case_id: int) -> HttpResponse:
    case_exists(case_id)
    form = ReassignForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:

        def act() -> str:
            case = case_reassign(
                case_id=case_id,
                to=form.cleaned_data["to"].strip(),
                actor=_actor(request),
                reason=form.cleaned_data["reason"],
            )
            return gettext("Case #%(case)s is now %(officer)s's.") % {
                "case": case.pk,
                "officer": form.cleaned_data["to"].strip(),
            }

        service_run(request, act)
    return redirect(reverse("case", args=[case_id]) + "#owner")


def _team_page_back(user_id: int) -> HttpResponseRedirect:
    return redirect(reverse("staff-team") + f"#member-{user_id}")


def _moved(result: AssignResult) -> str:
    parts = [
        ngettext("%(n)d case to %(officer)s", "%(n)d cases to %(officer)s", n) % {"n": n, "officer": officer}
        for officer, n in result.by_officer.items()
    ]
    if result.unplaced:
        parts.append(
            ngettext(
                "%(n)d case unassigned (nobody could take it)",
                "%(n)d cases unassigned (nobody could take them)",
                result.unplaced,
            )
            % {"n": result.unplaced}
        )
    return "; ".join(parts) or gettext("they had no open case")


@staff_view("restructuring.view_case", "restructuring.draft_proposal")
@require_POST
def leave_start_view(request: HttpRequest, user_id: int) -> HttpResponse:
    username = staff_username(user_id)

    def act() -> str:
        result = officer_leave_start(officer=user_id, actor=_actor(request))
        return gettext("%(officer)s is on leave: %(moved)s.") % {"officer": username, "moved": _moved(result)}

    service_run(request, act)
    return _team_page_back(user_id)


@staff_view("restructuring.view_case", "restructuring.draft_proposal")
@require_POST
def leave_end_view(request: HttpRequest, user_id: int) -> HttpResponse:
    username = staff_username(user_id)

    def act() -> str:
        if officer_leave_end(officer=user_id, actor=_actor(request)):
            return gettext("%(officer)s is back from leave and takes new cases again.") % {"officer": username}
        return gettext("%(officer)s was not on leave.") % {"officer": username}

    service_run(request, act)
    return _team_page_back(user_id)


@staff_view("restructuring.view_case")
@require_GET
def team_page(request: HttpRequest) -> HttpResponse:
    loads = workloads(timezone.now(), request.user)  # type: ignore[arg-type]
    return render(request, "restructuring/team.html", {"members": team_members(loads), "loads": loads})

"""The queue's bulk actions (restructuring/services/bulk.py): the selected cases, one action, a summary of what was
done and what was refused, per case, back on the queue."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from core.access import staff_view
from core.errors import WorkoutError
from restructuring.services.bulk import cases_bulk


@staff_view("restructuring.view_case", "restructuring.draft_proposal")
@require_POST
def queue_bulk(request: HttpRequest) -> HttpResponse:
    ids = [int(v) for v in request.POST.getlist("cases") if v.strip().isdigit()]
    params = {k: request.POST.get(k, "") for k in ("to", "reason", "text", "channel", "direction", "outcome")}
    try:
        result = cases_bulk(action=request.POST.get("action", ""), case_ids=ids, actor=request.user, params=params)  # type: ignore[arg-type]
    except WorkoutError as error:
        messages.error(request, str(error))
    else:
        if result.done:
            messages.success(
                request,
                ngettext("%(n)d case done: %(which)s", "%(n)d cases done: %(which)s", len(result.done))
                % {"n": len(result.done), "which": "; ".join(o.message for o in result.done)},
            )
        if result.refused:
            messages.error(
                request,
                ngettext("%(n)d case refused: %(why)s", "%(n)d cases refused: %(why)s", len(result.refused))
                % {"n": len(result.refused), "why": "; ".join(o.message for o in result.refused)},
            )
    back = request.POST.get("next", "")
    if not back.startswith("/") or not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/queue/"
    return redirect(back)

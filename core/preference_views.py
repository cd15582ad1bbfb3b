"""A member of staff sets their own preferences (core/preferences.py): the language of the pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from core.access import staff_view
from core.preferences import SESSION_KEY, language_set
from core.web import service_run


@staff_view()
@require_POST
def language_choose(request: HttpRequest) -> HttpResponse:
    language = request.POST.get("language", "")

    def act() -> str:
        language_set(user=request.user, language=language)
        request.session[SESSION_KEY] = language
        translation.activate(language)  # the answer in the language chosen
        return _("The pages are now in %(language)s.") % {
            "language": translation.get_language_info(language)["name_local"]
        }

    service_run(request, act)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/"
    return redirect(back)

"""The API's documentation pages: Swagger UI at /api/docs/ and Redoc at /api/redoc/, both reading /api/schema/.

Their assets are this site's static files (drf-spectacular-sidecar, pinned), not a CDN, and neither page has an
inline script: Swagger UI is drf-spectacular's split view (the page loads its start-up script from the same URL
with `?script`), Redoc our template (templates/api/redoc.html: no Google Fonts, no inline script). Both run under
the site's Content-Security-Policy with one addition, on the Redoc page only: Redoc builds its search index in a
web worker it creates from a blob: URL, which `worker-src 'self' blob:` allows (a worker, not a page script).

Redoc's bundle also shows Redocly's logo from their CDN, unconditionally; the policy refuses it (an error on
every load) and the page must not call out anyway. /api/redoc/redoc.standalone.js serves the pinned bundle with
that one address replaced by a blank image (a data: URL); tests/web/test_browser_api_docs.py fails if the
address is no longer found in the bundle (a new version) or if the page asks anything of another site.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from csp.decorators import csp_update
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_BLANK = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"


class SwaggerView(SpectacularSwaggerSplitView):
    url_name = "schema"


@method_decorator(csp_update({"worker-src": ["'self'", "blob:"]}), name="dispatch")
class RedocView(SpectacularRedocView):
    url_name = "schema"
    template_name = "api/redoc.html"

    @staticmethod
    def _redoc_standalone() -> str:
        return reverse("api-redoc-bundle")


@cache
def redoc_bundle_text() -> str:
    found = finders.find(REDOC_BUNDLE)
    if not isinstance(found, str):
        raise LookupError(f"{REDOC_BUNDLE} is not among the static files (drf-spectacular-sidecar installed?)")
    return Path(found).read_text(encoding="utf-8").replace(REDOC_LOGO, _BLANK)


@require_GET
@cache_control(public=True, max_age=3600)
def redoc_bundle(request: HttpRequest) -> HttpResponse:
    return HttpResponse(redoc_bundle_text(), content_type="application/javascript; charset=utf-8")


__all__ = ["RedocView", "SwaggerView", "redoc_bundle"]

"""HTML to PDF: a Django template rendered in one language, drawn by WeasyPrint (on Debian's Pango, in the DejaVu
fonts the system has) into PDF bytes. The letters to clients use it (restructuring/services/messages.py).

No network, ever: every resource a document names (a stylesheet, an image, a font) goes through a fetcher that
refuses it, so a letter whose template names `http://...` fetches nothing; WeasyPrint leaves the resource out and
logs it (`weasyprint` logger). Letters carry their style inline.

(A minimal module: the restructuring agreement's branch brings core/pdf.py with the same `pdf_render` and
`RenderedPdf`, and a fetcher that also serves this site's own static files; at a merge, that one stands.)
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.utils import translation

# The origin the documents' relative URLs resolve against: reserved (RFC 2606), it resolves nowhere.
STATIC_ORIGIN = "https://workout.invalid/"


class FetchRefusedError(ValueError):
    """A document named a resource: nothing is fetched."""


@dataclass(frozen=True)
class RenderedPdf:
    html: str  # what was drawn (tests read the text here: a PDF's text is not plain bytes)
    pdf: bytes
    sha256: str  # of `pdf`


def pdf_render(template_name: str, context: Mapping[str, Any], *, language: str) -> RenderedPdf:
    """Render `template_name` with `context` in `language` and draw it as a PDF."""
    import weasyprint  # loads Pango: only where a PDF is drawn

    with translation.override(language):
        html = render_to_string(template_name, dict(context))
    pdf = weasyprint.HTML(string=html, base_url=STATIC_ORIGIN, url_fetcher=_fetcher_class()()).write_pdf()
    assert pdf is not None  # write_pdf returns the bytes when given no target
    return RenderedPdf(html=html, pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest())


@functools.cache
def _fetcher_class() -> type:
    # WeasyPrint takes most of a second to import (Pango): only processes that draw a PDF pay for it.
    from weasyprint.urls import URLFetcher

    class RefuseEverything(URLFetcher):
        def __init__(self) -> None:
            super().__init__(allowed_protocols=(), allow_redirects=False, fail_on_errors=False)

        def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
            raise FetchRefusedError(f"{url[:200]}: documents fetch nothing")

    return RefuseEverything

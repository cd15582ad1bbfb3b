"""HTML to PDF: a Django template rendered in one language, drawn by WeasyPrint (on Debian's Pango, in the DejaVu
fonts the system has) into PDF bytes. The restructuring agreement uses it, and the letters.

No network, ever. Every resource a document names (a stylesheet, an image) goes through `static_files_fetcher`, which
serves this site's own static files from disk and refuses anything else: another site, a `file:` path, a `data:`
URL. A refused resource is left out of the PDF and logged by WeasyPrint (`weasyprint` logger), never fetched.
Templates name static files as pages do (`{% static "..." %}`); they resolve against the placeholder origin
`STATIC_ORIGIN`, which no network knows (.invalid).

The same template, context and language give the same bytes (WeasyPrint 70 writes no creation date nor random
document id), but a caller that keeps a PDF stores the bytes it hashed and serves those, never a new rendering.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation
from django.template.loader import render_to_string
from django.utils import translation

# The origin the documents' relative URLs resolve against: reserved (RFC 2606), it resolves nowhere.
STATIC_ORIGIN = "https://workout.invalid/"


class FetchRefusedError(ValueError):
    """A document named a resource that is not one of this site's static files: it is not fetched."""


@dataclass(frozen=True)
class RenderedPdf:
    html: str  # what was drawn (tests read the text here: a PDF's text is not plain bytes)
    pdf: bytes
    sha256: str  # of `pdf`


def pdf_render(template_name: str, context: Mapping[str, Any], *, language: str) -> RenderedPdf:
    """Render `template_name` with `context` in `language` and draw it as a PDF."""
    with translation.override(language):
        html = render_to_string(template_name, dict(context))
    return html_to_pdf(html)


def html_to_pdf(html: str) -> RenderedPdf:
    """Draw a rendered HTML document (a template's output: its text already escaped) as a PDF."""
    import weasyprint  # loads Pango: only processes that draw a PDF pay for it

    pdf = weasyprint.HTML(string=html, base_url=STATIC_ORIGIN, url_fetcher=static_files_fetcher()).write_pdf()
    assert pdf is not None  # write_pdf returns the bytes when given no target
    return RenderedPdf(html=html, pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest())


def pdf_warm() -> None:
    """Load WeasyPrint, Pango and the fonts now (a tiny document drawn): the first PDF a process draws otherwise
    pays a second or two for them, inside whatever request or transaction asked for it (a web worker calls this
    once it has started: config/gunicorn.py)."""
    html_to_pdf('<html lang="en"><body style="font-family: \'DejaVu Sans\'"><p>.</p></body></html>')


def static_file_path(url: str) -> Path:
    """The file on disk of a static file's URL (under STATIC_ORIGIN + STATIC_URL), found as the static files app
    finds it; FetchRefusedError for any other URL, or a path that climbs out (`..`) or names no file."""
    prefix = STATIC_ORIGIN + settings.STATIC_URL.lstrip("/")
    if not url.startswith(prefix):
        raise FetchRefusedError(f"{url[:200]}: not one of this site's static files; documents fetch nothing else")
    relative = unquote(urlsplit(url[len(prefix) :]).path)
    normal = posixpath.normpath(relative)
    if not relative or normal.startswith(("..", "/")) or normal != relative.rstrip("/"):
        raise FetchRefusedError(f"{url[:200]}: not a plain path of a static file")
    try:
        found = finders.find(normal)
    except SuspiciousFileOperation:
        found = None
    if not isinstance(found, str):
        raise FetchRefusedError(f"{url[:200]}: no such static file")
    return Path(found)


def static_files_fetcher() -> Any:
    """WeasyPrint's URL fetcher for this site's static files only (module docstring)."""
    return _fetcher_class()()


@functools.cache
def _fetcher_class() -> type:
    # WeasyPrint takes most of a second to import (Pango): only processes that draw a PDF pay for it.
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticFilesFetcher(URLFetcher):
        def __init__(self) -> None:
            super().__init__(allowed_protocols=("https",), allow_redirects=False, fail_on_errors=False)

        def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
            path = static_file_path(url)
            mime_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": mime_type})

    return StaticFilesFetcher

"""HTML to PDF (core/pdf.py): a template drawn by WeasyPrint in Debian's fonts, the same bytes for the same input,
and nothing fetched from anywhere but this site's static files."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import zlib
from pathlib import Path

import pytest
from django.conf import settings
from django.template import engines
from django.utils import translation

from core.pdf import (
    STATIC_ORIGIN,
    FetchRefusedError,
    RenderedPdf,
    html_to_pdf,
    pdf_render,
    static_file_path,
    static_files_fetcher,
)

# A document on the shared page (pdf/base.html), written here so that core's test needs no app's template.
DOCUMENT = (
    '{% extends "pdf/base.html" %}{% load i18n %}{% block running_title %}Test{% endblock %}'
    "{% block body %}<h1>{{ title }}</h1><p>Zahlung fällig: 1.234,56 € · {% translate 'Total' %}</p>{% endblock %}"
)


def _objects(pdf: bytes) -> bytes:
    """The PDF's objects as written, its compressed streams (object streams included) inflated."""
    inflated = [pdf]
    for stream in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        with contextlib.suppress(zlib.error):
            inflated.append(zlib.decompress(stream.group(1)))
    return b"\n".join(inflated)


def _document(language: str, **context: str) -> RenderedPdf:
    with translation.override(language):
        html = engines["django"].from_string(DOCUMENT).render({"title": "Hello", "lender_name": "L", **context})
    return html_to_pdf(html)


def test_a_template_becomes_a_pdf_in_the_dejavu_fonts_with_its_hash() -> None:
    rendered = _document("en", lender_name="Lender & Co", title="<script>x</script>")

    assert rendered.pdf.startswith(b"%PDF-")
    assert rendered.pdf.rstrip().endswith(b"%%EOF")
    assert rendered.sha256 == hashlib.sha256(rendered.pdf).hexdigest()
    assert b"/BaseFont /" in _objects(rendered.pdf)
    assert b"+DejaVu-Sans" in _objects(rendered.pdf)
    assert '<meta name="author" content="Lender &amp; Co">' in rendered.html  # escaped like any template
    assert "&lt;script&gt;x&lt;/script&gt;" in rendered.html
    assert 'lang="en"' in rendered.html


def test_the_same_input_gives_the_same_bytes_and_another_language_other_bytes() -> None:
    first = _document("en")
    again = _document("en")
    german = _document("de")

    assert again.pdf == first.pdf
    assert 'lang="de"' in german.html
    assert "Seite" in german.html
    assert "Summe" in german.html
    assert german.sha256 != first.sha256


def test_pdf_render_renders_a_template_file_in_the_language_given() -> None:
    rendered = pdf_render("pdf/base.html", {"lender_name": "L"}, language="de")

    assert rendered.pdf.startswith(b"%PDF-")
    assert 'lang="de"' in rendered.html
    assert translation.get_language() == settings.LANGUAGE_CODE  # the language was the document's only


def test_the_fetcher_serves_this_sites_static_files_and_refuses_everything_else() -> None:
    # a static file of the site (static/, STATICFILES_DIRS) is read from disk
    static_dir = Path(settings.STATICFILES_DIRS[0])
    some_file = next(p for p in sorted(static_dir.rglob("*")) if p.is_file())
    relative = some_file.relative_to(static_dir).as_posix()
    url = f"{STATIC_ORIGIN}{settings.STATIC_URL.lstrip('/')}{relative}"
    fetched = static_files_fetcher().fetch(url)
    assert fetched.read() == some_file.read_bytes()
    assert static_file_path(url) == some_file

    refused = [
        "https://example.com/logo.png",  # another site
        "http://workout.invalid/static/x.css",  # our placeholder, but not https
        f"{STATIC_ORIGIN}media/agreements/x.pdf",  # ours, but not a static file
        f"{STATIC_ORIGIN}static/../config/settings.py",  # climbing out
        f"{STATIC_ORIGIN}static/%2e%2e/config/settings.py",  # climbing out, encoded
        f"{STATIC_ORIGIN}static//etc/passwd",
        f"{STATIC_ORIGIN}static/no-such-file.css",
        "file:///etc/passwd",
        "data:text/plain,hello",
    ]
    for url in refused:
        with pytest.raises(FetchRefusedError):
            static_files_fetcher().fetch(url)


def test_a_document_naming_an_outside_resource_is_drawn_without_it(caplog: pytest.LogCaptureFixture) -> None:
    """An image of another site and a stylesheet by file path are left out (WeasyPrint logs each refusal), nothing
    is fetched, the PDF is drawn."""
    html = (
        '<html><head><link rel="stylesheet" href="file:///etc/passwd"></head>'
        '<body><p>hello</p><img src="https://example.com/track.png"></body></html>'
    )

    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        rendered = html_to_pdf(html)

    assert rendered.pdf.startswith(b"%PDF-")
    refusals = " ".join(record.getMessage() for record in caplog.records)
    assert "https://example.com/track.png" in refusals
    assert "file:///etc/passwd" in refusals
    assert "FetchRefusedError" in refusals

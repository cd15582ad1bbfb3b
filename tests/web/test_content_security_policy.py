"""The Content-Security-Policy: every response carries it, and no template relies on what it refuses (inline
scripts and inline event handlers). tests/web/test_browser.py checks in Chromium that the pages run under it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"javascript:", re.IGNORECASE)


def _directives(header: str) -> dict[str, list[str]]:
    parts = [part.strip().split() for part in header.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/api/v1/accounts/"])
def test_responses_carry_a_policy_that_runs_only_this_sites_scripts(client: Client, path: str) -> None:
    # when a page and an API answer (the API refuses without a token: the header is on that answer too)
    response = client.get(path)

    # then scripts come from this site only, with no inline or eval escape; no plugins, no framing
    directives = _directives(response["Content-Security-Policy"])
    assert directives["script-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'self'"]
    assert directives["form-action"] == ["'self'"]


def test_no_template_has_an_inline_script_or_event_handler() -> None:
    offending = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text(encoding="utf-8")
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, JAVASCRIPT_URL):
            offending += [f"{template.relative_to(TEMPLATES)}: {m.group(0).strip()}" for m in pattern.finditer(text)]
    assert not offending, offending


def test_the_guard_finds_what_it_looks_for() -> None:
    # the patterns above, on lines they must catch and lines they must let through
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert not INLINE_SCRIPT.search('<script src="/static/x.js" defer></script>')
    assert INLINE_HANDLER.search('<button onclick="go()">')
    assert not INLINE_HANDLER.search('<button type="button" data-print>')
    assert JAVASCRIPT_URL.search('<a href="javascript:go()">')

"""The API document speaks to clients (issue 14): every component and operation has a description of its own, and
none leaks the code's internal docstrings ("Mix into a serializer...", file paths, framework talk). The two
documentation pages have no inline script and call no other site (their rendering in Chromium:
tests/web/test_browser_api_docs.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders

from core.api.docs import REDOC_BUNDLE, REDOC_LOGO
from tests.api.conftest import Api

pytestmark = pytest.mark.django_db

# Phrases that belong to the code, not to the client: the old leak ("Mix into a serializer (before the REST
# framework class) to render it from a plan made once per class") and its kind.
INTERNAL = re.compile(
    r"mix into|serializer|rest framework|docstring|plan made|queryset|\bmixin\b|\w+/\w+\.py\b|select_for_update",
    re.IGNORECASE,
)


@pytest.fixture
def document() -> dict[str, Any]:
    response = Api(None).get("/api/schema/?format=json")
    assert response.status_code == 200
    return dict(json.loads(response.content))


def _descriptions(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield where, value
            else:
                yield from _descriptions(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _descriptions(item, f"{where}[{index}]")


def test_no_description_in_the_document_is_internal_text(document: dict[str, Any]) -> None:
    found = list(_descriptions(document))
    assert len(found) > 100  # components, their properties, operations, parameters, responses

    leaks = {where: text for where, text in found if INTERNAL.search(text)}

    assert leaks == {}


def test_every_component_and_operation_describes_itself(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    objects = {
        name: schema
        for name, schema in schemas.items()
        if schema.get("type") == "object" and not name.startswith(("Paginated", "Patched"))
    }
    assert len(objects) >= 25

    undescribed = [name for name, schema in objects.items() if not schema.get("description", "").strip()]
    operations = [
        (method.upper(), path, item) for path, methods in document["paths"].items() for method, item in methods.items()
    ]
    silent = [f"{method} {path}" for method, path, item in operations if not item.get("description", "").strip()]

    assert undescribed == []
    assert silent == []
    # and no two components share one description (what an inherited docstring looks like)
    texts = [schema["description"] for schema in objects.values()]
    shared = sorted({text[:60] for text in texts if texts.count(text) > 1})
    assert shared == []


def test_amount_fields_say_their_grammar(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    top_up = schemas["TopUpDeclareRequest"]["properties"]["amount"]
    shown = schemas["TopUp"]["properties"]["amount"]

    assert top_up["pattern"] == r"^[0-9]{1,20}(\.[0-9]{1,8})?$"
    assert "at most its decimal places" in top_up["description"]
    assert shown["pattern"] == r"^-?[0-9]{1,20}(\.[0-9]{1,8})?$"
    for written in ("19500.00", "0.00000001"):
        assert re.fullmatch(top_up["pattern"], written)
    for written in ("", "-", "1.", ".5", "1e3", "1_000", " 1"):
        assert not re.fullmatch(top_up["pattern"], written)


_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_URL = re.compile(r"""(?:src|href)=["'](https?:)?//""", re.IGNORECASE)


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_documentation_pages_have_no_inline_script_and_no_other_site(settings: Any, path: str) -> None:
    settings.STORAGES = {  # the pages link static files: without `collectstatic`'s manifest in tests
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    api = Api(None)

    page = api.get(path)

    assert page.status_code == 200
    html = page.content.decode()
    scripts = _SCRIPT.findall(html)
    assert scripts, html
    assert all("src=" in attributes and not body.strip() for attributes, body in scripts), scripts
    assert not _URL.search(html), html
    for attributes, _ in scripts:  # each script is served by this site, as JavaScript
        source = re.search(r'src="([^"]+)"', attributes)
        assert source is not None
        url = source.group(1).replace("&amp;", "&")
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), url
        else:
            script = api.get(url)
            assert script.status_code == 200, url
            assert script["Content-Type"].startswith("application/javascript"), url


def test_the_served_redoc_bundle_calls_no_other_site() -> None:
    original = Path(str(finders.find(REDOC_BUNDLE))).read_text(encoding="utf-8")
    assert REDOC_LOGO in original  # the pinned bundle still has it: the replacement below is not a no-op

    response = Api(None).get("/api/redoc/redoc.standalone.js")
    served = response.content

    assert response.status_code == 200
    assert REDOC_LOGO.encode() not in served
    assert len(served) > len(original) // 2

"""A file given to whoever may have it (the API's downloads and the case page's): the bytes kept, to save rather
than display."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

from django.http import FileResponse, HttpResponse, HttpResponseBase
from django.utils.http import content_disposition_header


def file_response(
    content: bytes | IO[bytes], *, content_type: str, filename: str, headers: Mapping[str, str] | None = None
) -> HttpResponseBase:
    """A file to save, not to display (`attachment`): its type as kept, never sniffed (nosniff is site-wide), and
    not cached by anyone but the caller."""
    if isinstance(content, bytes):
        response: HttpResponseBase = HttpResponse(content, content_type=content_type)
    else:
        response = FileResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    for name, value in (headers or {}).items():
        response[name] = value
    return response

"""The API's JSON parser: REST framework's, with the bounds of core.jsonparse (nesting depth, number length),
so that a hostile body is a 400 naming the problem, never a RecursionError and a 500."""

from __future__ import annotations

import codecs
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

from core.jsonparse import JsonInputError, loads


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except (UnicodeDecodeError, LookupError) as error:
            raise ParseError(f"the body is not {encoding} text: {error}") from None
        try:
            return loads(text, max_depth=settings.WORKOUT_JSON_MAX_DEPTH, parse_constant=strict_constant)
        except JsonInputError as error:  # malformed JSON keeps REST framework's code, parse_error
            code = "parse_error" if error.code == "invalid_json" else error.code
            raise ParseError(error.message, code=code) from None
        except ValueError as error:  # NaN or Infinity (strict JSON)
            raise ParseError(f"not valid JSON: {error}") from None

"""JSON from outside (API bodies, import files), parsed with bounds. Pure Python (no Django).

Python's json recurses once per nesting level: a body of 20,000 `[` exhausts the interpreter's recursion limit
(RecursionError, a 500), and a number of more than 4,300 digits fails int() with a plain ValueError. Here the
nesting depth is measured first, in one linear pass that does not recurse, and a document deeper than
`max_depth` is refused before it is parsed; a number token longer than `max_number_chars` is refused too. Both
refusals, and any other malformed JSON, are a JsonInputError that says where (line and column).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

# Strings (skipped whole, so brackets inside them do not count) and the brackets themselves.
_TOKENS = re.compile(r'"(?:[^"\\]+|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENING = frozenset("[{")
_CLOSING = frozenset("]}")


class JsonInputError(ValueError):
    def __init__(self, message: str, *, code: str = "invalid_json", line: int = 0, column: int = 0) -> None:
        where = f" at line {line} column {column}" if line else ""
        super().__init__(f"{message}{where}")
        self.code = code
        self.message = f"{message}{where}"


def _where(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def nesting_depth_check(text: str, max_depth: int) -> None:
    """Raise JsonInputError (code json_too_deep) when arrays and objects nest deeper than `max_depth`."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in _OPENING:
            depth += 1
            if depth > max_depth:
                line, column = _where(text, match.start())
                raise JsonInputError(
                    f"the JSON nests arrays and objects more than {max_depth} levels deep",
                    code="json_too_deep",
                    line=line,
                    column=column,
                )
        elif token in _CLOSING:
            depth -= 1


def _bounded(parse: Callable[[str], Any], max_chars: int) -> Callable[[str], Any]:
    def bounded(token: str) -> Any:
        if len(token) > max_chars:
            raise _NumberTooLongError(len(token))
        return parse(token)

    return bounded


class _NumberTooLongError(ValueError):
    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length


def loads(
    text: str,
    *,
    max_depth: int,
    max_number_chars: int = 100,
    parse_float: Callable[[str], Any] = float,
    parse_int: Callable[[str], Any] = int,
    **kwargs: Any,
) -> Any:
    """json.loads within the bounds, or JsonInputError (never RecursionError, nor int()'s ValueError)."""
    nesting_depth_check(text, max_depth)
    try:
        return json.loads(
            text,
            parse_float=_bounded(parse_float, max_number_chars),
            parse_int=_bounded(parse_int, max_number_chars),
            **kwargs,
        )
    except json.JSONDecodeError as error:
        raise JsonInputError(f"not valid JSON: {error.msg}", line=error.lineno, column=error.colno) from None
    except _NumberTooLongError as error:
        raise JsonInputError(
            f"a number of {error.length} characters: at most {max_number_chars}", code="json_number_too_long"
        ) from None
    except RecursionError:  # not reached within max_depth; a last guard, never a 500
        raise JsonInputError("the JSON nests too deeply", code="json_too_deep") from None

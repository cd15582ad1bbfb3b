"""The one tree of domain errors. Four kinds, each with its stable machine-readable `code`:

    WorkoutError
      Invalid            the input is wrong (400)                      alias ValidationError
      Conflict           the object's state does not allow it (409)    alias ConflictError
      PermissionDenied   the actor may not (403)                       alias PermissionRefusedError
      NotFound           no such object, or not the caller's (404)     alias NotFoundError

A service raises one of them, or a subclass of one that names the case in its own `code` (NegotiationError is a
Conflict with code "negotiation_conflict"). They are mapped once to HTTP, by kind (core/api/errors.py), and once
to the UI's messages (core/web.py); a WorkoutError of none of the four kinds is a 400. The older names stay as
aliases: one class each, so `except ConflictError` and `except Conflict` are the same. Pure Python: no Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class WorkoutError(Exception):
    code = "workout_error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class Invalid(WorkoutError):
    """The input is wrong: the message (and `field` in the context, when there is one) says what and where."""

    code = "invalid"


class Conflict(WorkoutError):
    """The object is not in a state that allows this (someone acted first, it moved on, it was never so)."""

    code = "conflict"


class PermissionDenied(WorkoutError):
    """The actor may not do this: they lack the permission, or it is something nobody may do to themselves
    (grant themselves a role or an authority limit, issue themselves an enrolment link, approve what they made)."""

    code = "permission_denied"


class NotFound(WorkoutError):
    """The object named does not exist (or is not the caller's to see)."""

    code = "not_found"


ValidationError = Invalid
ConflictError = Conflict
PermissionRefusedError = PermissionDenied
NotFoundError = NotFound


class ImportRowError(Invalid):
    """A row of an import file is bad. The message names the file, the row and the field, so an operator
    can fix the file without reading code; nothing of the file has been applied."""

    code = "import_row_invalid"

    def __init__(self, *, file: str, row: int | str, field: str, problem: str) -> None:
        super().__init__(f"{file}: row {row}: field '{field}': {problem}", file=file, row=row, field=field)
        self.file = file
        self.row = row
        self.field = field
        self.problem = problem


class ImportFileError(Invalid):
    """An import file is refused as a whole; nothing of it has been applied. Either the file itself is
    unusable (unreadable, not JSON, a wrong CSV header) or some rows are bad: `errors` then holds every
    bad field found, up to a cap, so an operator can fix the file in one pass instead of one problem per
    run. The message is the problem, then one row error per line."""

    code = "import_file_invalid"

    def __init__(self, *, file: str, problem: str, errors: Sequence[ImportRowError] = (), not_shown: int = 0) -> None:
        lines = [f"{file}: {problem}", *(error.message for error in errors)]
        if not_shown:
            lines.append(f"{file}: ... and {not_shown} more not shown")
        super().__init__("\n".join(lines), file=file)
        self.file = file
        self.problem = problem
        self.errors = tuple(errors)
        self.not_shown = not_shown

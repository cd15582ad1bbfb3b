"""The one tree of domain errors. Each carries a stable machine-readable `code`; the API maps them to
HTTP statuses in one place and the UI to messages."""

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


class ValidationError(WorkoutError):
    code = "invalid"


class ImportRowError(ValidationError):
    """A row of an import file is bad. The message names the file, the row and the field, so an operator
    can fix the file without reading code; nothing of the file has been applied."""

    code = "import_row_invalid"

    def __init__(self, *, file: str, row: int | str, field: str, problem: str) -> None:
        super().__init__(f"{file}: row {row}: field '{field}': {problem}", file=file, row=row, field=field)
        self.file = file
        self.row = row
        self.field = field
        self.problem = problem


class ImportFileError(ValidationError):
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


class ConflictError(WorkoutError):
    code = "conflict"


class PermissionRefusedError(WorkoutError):
    """The actor may not do this: they lack the permission, or it is something nobody may do to themselves
    (grant themselves a role or an authority limit, issue themselves an enrolment link). 403 in the API."""

    code = "permission_denied"


class NotFoundError(WorkoutError):
    """The object named does not exist (or is not the caller's to see)."""

    code = "not_found"

"""The one tree of domain errors. Each carries a stable machine-readable `code`; the API maps them to
HTTP statuses in one place and the UI to messages."""

from __future__ import annotations

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


class MoneyTypeError(ValidationError):
    """A float reached a money boundary. Floats cannot represent most decimal amounts exactly, so they
    are refused rather than silently rounded."""

    code = "money_float_refused"


class ConflictError(WorkoutError):
    code = "conflict"

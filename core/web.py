"""What the UI's views share about errors: a service's refusal (a core.errors.WorkoutError, of any kind) is shown
to the member of staff as the page's error message, in the error's own words, as core/api/errors.py gives it its
HTTP status. Views call `service_run`, or `refusal_show` where they do more than redirect. (A view with a form
puts an `Invalid` on the form's field instead, where the input is.)"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest

from core.errors import WorkoutError


def refusal_show(request: HttpRequest, error: WorkoutError, *, prefix: str = "") -> None:
    messages.error(request, f"{prefix}{error}")


def service_run(request: HttpRequest, act: Callable[[], str]) -> None:
    """Call the service: what it did is the success message, or its refusal is the error message."""
    try:
        done = act()
    except WorkoutError as error:
        refusal_show(request, error)
    else:
        messages.success(request, done)

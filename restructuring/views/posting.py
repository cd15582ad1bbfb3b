"""What the officer's and the administrator's POST views share: the member of staff acting, and one service call
whose outcome, or refusal, is the message the next page shows."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest

from core.errors import WorkoutError


def staff_actor(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]  # staff_view let only a signed-in user through


def service_run(request: HttpRequest, act: Callable[[], str]) -> None:
    """Call the service; what it did is the message, or its refusal is."""
    try:
        done = act()
    except WorkoutError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)

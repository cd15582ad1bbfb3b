"""Who may see and do what in the officer and compliance UI.

Every view declares its policy with `staff_view(...)`: a signed-in member of staff (a role group other than
client), verified with a second factor (django-otp), holding every permission named. Otherwise: not signed in,
to the login page; signed in without a second factor, to the page that says how to get one (an enrolment link);
a client or a user without the permission, 403. There is no view without a policy: `staff_view` is the only way
the UI's views are written.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import redirect

from core.roles import CLIENT

View = Callable[..., HttpResponseBase]  # a page, a redirect, or a file (a download)


def is_staff_member(user: Any) -> bool:
    """A user of the UI: signed in, active, in at least one role group, and not a client."""
    if not (user.is_authenticated and user.is_active):
        return False
    groups = set(user.groups.values_list("name", flat=True))
    return CLIENT not in groups and (bool(groups) or user.is_superuser)


def staff_view(*permissions: str) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            if not is_staff_member(user):
                raise PermissionDenied("this page is for credit officers and compliance")
            if not user.is_verified():  # type: ignore[attr-defined]
                return redirect("two-factor-setup")
            if permissions and not user.has_perms(permissions):
                raise PermissionDenied(f"needs {', '.join(permissions)}")
            return view(request, *args, **kwargs)

        wrapped.staff_permissions = permissions  # type: ignore[attr-defined]
        return wrapped

    return decorate

"""A member of staff's own preferences: the language of the pages, chosen per user among settings.LANGUAGES.

The choice is stored (UserPreference), audited (`staff.language_set`, object "auth.user"), and copied into the
session, where UserLanguageMiddleware reads it on each request: at sign-in (the `user_logged_in` signal) and when it
is set. Pages thus cost no query for it. Without a choice, the pages are in settings.LANGUAGE_CODE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import gettext

from core.audit import audit_record
from core.audit_events import STAFF_LANGUAGE_SET
from core.errors import ValidationError
from core.models import UserPreference

SESSION_KEY = "workout_language"


def languages() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def language_set(*, user: Any, language: str) -> UserPreference:
    """Set `user`'s language (ValidationError on `language` for one the site does not ship), with its audit event."""
    if language not in languages():
        raise ValidationError(
            gettext("language %(language)s: not one of %(languages)s")
            % {"language": repr(language), "languages": ", ".join(languages())},
            field="language",
        )
    with transaction.atomic():
        preference, _created = UserPreference.objects.select_for_update().get_or_create(
            user=user, defaults={"language": language}
        )
        before = "" if _created else preference.language
        if not _created:
            preference.language = language
            preference.save(update_fields=["language", "updated_at"])
        audit_record(
            STAFF_LANGUAGE_SET.entry(
                user, actor=user, payload={"username": user.get_username(), "language": language, "before": before}
            )
        )
    return preference


@receiver(user_logged_in)
def _language_to_session(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    language = UserPreference.objects.filter(user=user).values_list("language", flat=True).first()
    if language:
        request.session[SESSION_KEY] = language
    else:
        request.session.pop(SESSION_KEY, None)


class UserLanguageMiddleware:
    """Activate the signed-in user's language for the request (from the session; see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
        if language not in languages():
            language = settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        translation.deactivate()
        return response

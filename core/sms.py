"""Text messages through a provider, behind one interface (like Django's email backends).

`sms_backend()` is the backend named by WORKOUT_SMS_BACKEND:

- `core.sms.ConsoleSmsBackend` (the default): writes each message to standard output, and to a file per message
  under WORKOUT_SMS_FILE_PATH when that is set (the demo: a newcomer reads what a client would receive). Nothing
  leaves the machine.
- `core.sms.TwilioSmsBackend`: Twilio's Programmable Messaging REST API (`POST /2010-04-01/Accounts/{AccountSid}/
  Messages.json`, form-encoded `To`, `Body`, and `From` or `MessagingServiceSid`, HTTP Basic with the account SID
  and auth token), called through core/outbound_http.py within WORKOUT_SMS_TIMEOUT_SECONDS. The answer's `sid` is
  the provider's id of the message. When WORKOUT_TWILIO_STATUS_CALLBACK_URL is set, Twilio posts the message's
  delivery reports there (restructuring/views/provider_hooks.py), signed as `twilio_signature` computes.

A backend's `send` returns the provider's id of the message, or raises `SmsRejected` (the provider refused the
message: a number that is not one, a blocked recipient; sending it again cannot help) or `SmsFailed` (no answer, a
provider error, a rate limit: retried by the outbox).

The provider's address is the operator's setting, not a client's, so it may be on a private network (a gateway
inside the house); the API's host is otherwise checked like any outbound call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import urlencode

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from core.outbound_http import DestinationRefused, PostFailed, http_post

_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class SmsMessage:
    to: str  # E.164, "+4915112345678"
    body: str
    reference: str  # ours: the notification's id


class SmsRejected(Exception):
    """The provider refused the message for good."""


class SmsFailed(Exception):
    """The message did not go this time; worth trying again."""


class SmsBackend(Protocol):
    def send(self, message: SmsMessage) -> str: ...


def sms_backend() -> SmsBackend:
    backend: SmsBackend = import_string(settings.WORKOUT_SMS_BACKEND)()
    return backend


class ConsoleSmsBackend:
    """Writes the message to standard output (and to a file of its own under WORKOUT_SMS_FILE_PATH, when set)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, message: SmsMessage) -> str:
        text = (
            f"To: {message.to}\nReference: {message.reference}\nDate: {timezone.now().isoformat()}\n\n{message.body}\n"
        )
        self.stream.write(f"--- SMS {'-' * 60}\n{text}{'-' * 68}\n")
        self.stream.flush()
        directory = getattr(settings, "WORKOUT_SMS_FILE_PATH", "")
        if directory:
            path = Path(directory)
            path.mkdir(parents=True, exist_ok=True)
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
            (path / f"{stamp}-sms-{message.reference}.txt").write_text(text, encoding="utf-8")
        return f"console-{message.reference}"


class TwilioSmsBackend:
    """Twilio's Messages API (module docstring)."""

    def __init__(self) -> None:
        self.account_sid = settings.WORKOUT_TWILIO_ACCOUNT_SID
        self.auth_token = settings.WORKOUT_TWILIO_AUTH_TOKEN
        if not (self.account_sid and self.auth_token):
            raise SmsFailed("Twilio is not configured: set WORKOUT_TWILIO_ACCOUNT_SID and WORKOUT_TWILIO_AUTH_TOKEN")
        self.sender = settings.WORKOUT_TWILIO_FROM
        self.messaging_service = settings.WORKOUT_TWILIO_MESSAGING_SERVICE_SID
        if not (self.sender or self.messaging_service):
            raise SmsFailed("Twilio needs WORKOUT_TWILIO_FROM or WORKOUT_TWILIO_MESSAGING_SERVICE_SID")
        self.url = f"{settings.WORKOUT_TWILIO_API_URL.rstrip('/')}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def send(self, message: SmsMessage) -> str:
        form = {"To": message.to, "Body": message.body}
        if self.messaging_service:
            form["MessagingServiceSid"] = self.messaging_service
        else:
            form["From"] = self.sender
        if settings.WORKOUT_TWILIO_STATUS_CALLBACK_URL:
            form["StatusCallback"] = settings.WORKOUT_TWILIO_STATUS_CALLBACK_URL
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode("ascii")
        try:
            answer = http_post(
                self.url,
                body=urlencode(form).encode("utf-8"),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                    "Authorization": f"Basic {credentials}",
                    "User-Agent": "Workout-Messages/1",
                },
                deadline_seconds=settings.WORKOUT_SMS_TIMEOUT_SECONDS,
                allow_private=True,  # the operator's provider address (module docstring)
                success_body_bytes=_ANSWER_BYTES,
            )
        except DestinationRefused as error:
            raise SmsRejected(f"Twilio: {error}") from None
        except PostFailed as error:
            raise SmsFailed(f"Twilio: {error}") from None
        if answer.ok:
            sid = _json(answer.body).get("sid")
            if not isinstance(sid, str) or not sid:
                raise SmsFailed(f"Twilio: HTTP {answer.status} without a message sid")
            return sid
        problem = _json(answer.excerpt.encode("utf-8"))
        detail = f"HTTP {answer.status} {answer.reason}"
        if problem.get("code") or problem.get("message"):
            detail += f": {problem.get('code', '')} {problem.get('message', '')}".rstrip()
        # 429 (too many requests) and 5xx pass; any other 4xx is the message's (a number that is not one, a
        # recipient who opted out) or the account's, and sending the same again will not change it.
        if answer.status == 429 or answer.status >= 500:
            raise SmsFailed(f"Twilio: {detail}")
        raise SmsRejected(f"Twilio: {detail}")


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def twilio_signature(*, auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The X-Twilio-Signature of a request Twilio sends to `url` with the form `params`: the base64 of the
    HMAC-SHA1, keyed with the auth token, of the full URL followed by every parameter's name and value, sorted by
    name, with nothing between them."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")

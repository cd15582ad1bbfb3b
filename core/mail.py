"""The demo's email backend: every message to the console and to a file of its own.

`ConsoleAndFilesEmailBackend` (EMAIL_BACKEND in DEBUG) hands each message to Django's console backend (the terminal
of `make demo`, or a worker's) and writes it, as the mail system would receive it (RFC 5322, `.eml`), to a file of
its own under EMAIL_FILE_PATH, named by the time and the notification it tells of, so a newcomer can read what a
client would receive. (Django's file-based backend writes one file per connection, and names it by the second and
an object's id, which two connections in one second can share.) Nothing leaves the machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.console import EmailBackend as ConsoleBackend
from django.utils import timezone


class ConsoleAndFilesEmailBackend(BaseEmailBackend):
    def __init__(self, fail_silently: bool = False, file_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently)
        self.console = ConsoleBackend(fail_silently=fail_silently, **kwargs)
        self.directory = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = self.console.send_messages(email_messages)
        self.directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            reference = message.extra_headers.get("X-Workout-Notification-Id") or uuid.uuid4().hex
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
            (self.directory / f"{stamp}-notification-{reference}.eml").write_bytes(message.message().as_bytes())
        return sent

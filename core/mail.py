"""The demo's email backend: every message to the console and to a file of its own.

`ConsoleAndFilesEmailBackend` (EMAIL_BACKEND in DEBUG) hands each message to Django's console backend (the terminal
of `make demo`, or a worker's) and to Django's file-based backend under EMAIL_FILE_PATH, one file per message (the
file backend writes one file per connection; a connection is opened per message here), so a newcomer can read what
a client would receive. Nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.console import EmailBackend as ConsoleBackend
from django.core.mail.backends.filebased import EmailBackend as FileBackend


class ConsoleAndFilesEmailBackend(BaseEmailBackend):
    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently)
        self._kwargs = kwargs
        self.console = ConsoleBackend(fail_silently=fail_silently, **kwargs)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = self.console.send_messages(email_messages)
        # Kept alive together: a file's name holds its backend's id(), which a freed one could hand on.
        files = [FileBackend(fail_silently=self.fail_silently, **self._kwargs) for _ in email_messages]
        for backend, message in zip(files, email_messages, strict=True):
            backend.send_messages([message])
        return sent

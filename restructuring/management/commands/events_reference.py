"""manage.py events_reference: the event catalogue and the webhooks' manual, generated from the code
(docs/events.md)."""

from __future__ import annotations

from core.commands import GeneratedDocCommand
from restructuring.events import events_reference


class Command(GeneratedDocCommand):
    help = "Print the event types and their payload schemas; --write updates docs/events.md."
    doc = "events.md"

    def generate(self) -> str:
        return events_reference()

"""The demo's clients as reachable people: every client an email address; some a phone number, some a postal
address, some reading German, some in another time zone with quiet hours. Deterministic (the client's number picks
its traits), so two demos look alike. Written after the book, before its first sweep, so the margin calls it finds
are told (restructuring/services/messages.py): to the console and to files under WORKOUT_OUTBOX_DIR in the demo's
settings, letters as PDFs under MEDIA_ROOT.
"""

from __future__ import annotations

from datetime import time

from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Concat, Lower

from accounts.models import Client, MessagePreferences

# (time zone, locale) by the client's number: mostly English in London and New York, a third German in Berlin.
_PLACES = (("Europe/London", "en"), ("Europe/Berlin", "de"), ("America/New_York", "en"))
_STREETS = {"en": ("1 Main Street", "London EC1A 1BB"), "de": ("Hauptstraße 1", "10115 Berlin")}


def demo_contacts_write() -> dict[str, int]:
    """Emails for every client; preferences for one client in three (German or English, a phone number, quiet
    hours 21:00-08:00 for some, a postal address and letters for one in twenty). Returns what it wrote."""
    with transaction.atomic():
        emails = Client.objects.update(email=Concat(Lower("code"), Value("@client.example")))
        MessagePreferences.objects.filter(client__isnull=False).delete()
        rows = []
        for number, pk in enumerate(Client.objects.order_by("pk").values_list("pk", flat=True)):
            if number % 3:
                continue
            zone, locale = _PLACES[(number // 3) % len(_PLACES)]
            quiet = number % 2 == 0
            letters = number % 20 == 0
            street, city = _STREETS[locale]
            rows.append(
                MessagePreferences(
                    client_id=pk,
                    phone=f"+4915{number:09d}" if locale == "de" else f"+4479{number:08d}",
                    postal_address=f"{street}\n{city}" if letters else "",
                    locale=locale,
                    time_zone=zone,
                    quiet_hours_start=time(21) if quiet else None,
                    quiet_hours_end=time(8) if quiet else None,
                    by_letter=letters,
                )
            )
        MessagePreferences.objects.bulk_create(rows, batch_size=2000)
    return {"emails": emails, "preferences": len(rows), "letters": sum(1 for r in rows if r.by_letter)}

"""manage.py demo_setup: a demo book, swept. The people who look at it are demo_users' (each with an
authenticator): the admin, read-only and behind the second factor, is for ada, the demo's administrator."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from accounts.services.sweep import sweep_run
from accounts.services.volatility import instrument_volatility_refresh
from core.commands import OperationCommand
from demo.book import demo_book_generate, demo_book_write
from demo.contacts import demo_contacts_write


class Command(OperationCommand):
    help = "Replace the book with a generated demo book and sweep it (DEBUG only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--accounts", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_setup deletes the book: it runs only with DEBUG=true")
        book = demo_book_generate(accounts=options["accounts"], seed=options["seed"])
        counts = demo_book_write(book=book, replace=True)
        self.stdout.write("demo book: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
        contacts = demo_contacts_write()
        self.stdout.write(
            f"clients' contacts: {contacts['emails']} emails; {contacts['preferences']} with message preferences "
            f"(phone, language, quiet hours), {contacts['letters']} taking letters"
        )
        instrument_volatility_refresh()
        sweep = sweep_run()
        self.stdout.write(f"sweep {sweep.pk}: " + ", ".join(f"{n} {band}" for band, n in sweep.band_counts.items()))
        # The book, the volatilities and the sweep (a transaction per shard, the case moves on their commits)
        # are each their own transactions: the run is recorded after them.
        with self.operation() as run:
            run.outcome = {
                "book": counts,
                "contacts": contacts,
                "sweep_id": sweep.pk,
                "band_counts": sweep.band_counts,
            }
        self.stdout.write("")
        self.stdout.write("Workout demo: http://127.0.0.1:8000/ (the staff's sign-ins follow, from demo_users)")
        self.stdout.write("  the admin (read-only, second factor): http://127.0.0.1:8000/admin/ as ada")
        self.stdout.write("  move a price:  .venv/bin/python manage.py shock BTC -25%  then  manage.py sweep")
        self.stdout.write("  a cascade:     .venv/bin/python manage.py cascade BTC --drop 0.3")
        outbox = settings.WORKOUT_OUTBOX_DIR
        self.stdout.write("  what clients receive (printed above as they were sent, and kept):")
        self.stdout.write(f"    emails:  {settings.EMAIL_FILE_PATH}/ (a file each)")
        self.stdout.write(f"    SMS:     {settings.WORKOUT_SMS_FILE_PATH or outbox / 'sms'}/ (a file each)")
        self.stdout.write(f"    letters: {settings.MEDIA_ROOT}/letters/<case>/ (PDF; also on each case page)")
        self.stdout.write("    the templates they are written from: http://127.0.0.1:8000/messages/templates/")

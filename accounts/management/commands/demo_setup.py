"""manage.py demo_setup: a demo book, swept, with a login to look at it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

from accounts.services.demo_book import demo_book_generate, demo_book_write
from accounts.services.sweep import sweep_run
from accounts.services.volatility import instrument_volatility_refresh
from core.commands import OperationCommand

DEMO_USERNAME = "admin"
# Only ever set on a DEBUG machine (handle refuses otherwise), so a fixed, printed password is the point.
DEMO_PASSWORD = "workout-demo"  # noqa: S105


class Command(OperationCommand):
    help = "Replace the book with a generated demo book, sweep it, and create the demo login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--accounts", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_setup deletes the book and sets a known password: it runs only with DEBUG=true")
        book = demo_book_generate(accounts=options["accounts"], seed=options["seed"])
        counts = demo_book_write(book=book, replace=True)
        self.stdout.write("demo book: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
        instrument_volatility_refresh()
        sweep = sweep_run()
        self.stdout.write(f"sweep {sweep.pk}: " + ", ".join(f"{n} {band}" for band, n in sweep.band_counts.items()))
        # The book, the volatilities and the sweep (a transaction per shard, the case moves on their commits)
        # are each their own transactions: the run is recorded after them, with the demo login it sets.
        with self.operation() as run:
            user, created = get_user_model().objects.get_or_create(
                username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
            )
            user.set_password(DEMO_PASSWORD)
            user.save()
            run.outcome = {
                "book": counts,
                "sweep_id": sweep.pk,
                "band_counts": sweep.band_counts,
                "login": {"username": DEMO_USERNAME, "created": created, "password_set": True},
            }
        self.stdout.write("")
        self.stdout.write("Workout demo: http://127.0.0.1:8000/ (the officers' and compliance logins follow)")
        self.stdout.write(f"  Django admin: http://127.0.0.1:8000/admin/  {DEMO_USERNAME} / {DEMO_PASSWORD}")
        self.stdout.write("  move a price:  .venv/bin/python manage.py shock BTC -25%  then  manage.py sweep")
        self.stdout.write("  a cascade:     .venv/bin/python manage.py cascade BTC --drop 0.3")

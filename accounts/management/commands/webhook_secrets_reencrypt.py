from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.services.webhook_secrets import webhook_secrets_reencrypt
from core.commands import OperationCommand


class Command(OperationCommand):
    help = (
        "Re-encrypt the webhook endpoints' secrets under the first key of WORKOUT_WEBHOOK_SECRET_KEYS (the step of a "
        "key rotation before the old key is dropped). Exit status 1, naming the clients, if a secret decrypts with "
        "no key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="endpoints rewritten per transaction")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        run = self.operation_run()
        result = webhook_secrets_reencrypt(batch_size=options["batch_size"])
        # Recorded right after, not in the work's transaction: the secrets are rewritten a batch of endpoints per
        # transaction, so that a large table is never locked whole. Unreadable secrets fail the command below,
        # but the batches before have been rewritten: the run is recorded either way.
        run.outcome = {
            "reencrypted": result.reencrypted,
            "already_current": result.already_current,
            "unreadable": list(result.unreadable),
        }
        self.operation_record_after(run)
        self.stdout.write(
            f"webhook secrets: {result.reencrypted} re-encrypted under the first key, "
            f"{result.already_current} already under it"
        )
        if result.unreadable:
            raise CommandError(
                f"{len(result.unreadable)} webhook secret(s) no configured key decrypts, left as stored (clients "
                f"{', '.join(result.unreadable)}): put the key they were encrypted under back in "
                "WORKOUT_WEBHOOK_SECRET_KEYS, or have these clients rotate their endpoints' secrets "
                "(POST /api/v1/webhooks/{id}/rotate/ with previous_valid_hours 0)"
            )

"""manage.py api_token: make, list and revoke API tokens (accounts/services/api_tokens.py), and purge old
idempotency records.

api_token create --client C-00042 [--days 90] [--name "treasury system"]   prints the token, once
api_token create --user alice [--days 30]                                   a staff token (operations)
api_token list [--client C-00042 | --user alice]
api_token revoke wo_1a2b3c4d                                                by prefix (or the whole token)
api_token revoke --client C-00042 --all                                     every live token of a client
api_token purge-idempotency [--days 7]                                      records older than the days

`--actor USERNAME` (before or after the action) names the member of staff a change is made for; without it the
audit events name the operating-system user (command:<user>@<host>).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from accounts.models import ApiToken, Client
from accounts.services.api_tokens import DEFAULT_DAYS, TOKEN_START, api_token_create, api_token_revoke
from core.commands import OperationCommand
from core.errors import WorkoutError
from core.models import IdempotencyRecord


class Command(OperationCommand):
    help = (
        "Make, list and revoke API tokens; purge old idempotency records. Each token made or revoked is an audit "
        "event naming --actor (or the operating-system user), and so is the run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="make a token and print it (it is shown only this once)")
        self._owner(create)
        create.add_argument("--days", type=float, default=DEFAULT_DAYS, help=f"lifetime (default {DEFAULT_DAYS})")
        create.add_argument("--name", default="", help="what the token is for")
        listing = sub.add_parser("list", help="list tokens (never their secrets)")
        self._owner(listing, required=False)
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix, or --all of an owner")
        revoke.add_argument("prefix", nargs="?", help="the token's prefix (wo_1a2b3c4d) or the whole token")
        self._owner(revoke, required=False)
        revoke.add_argument("--all", action="store_true", help="every live token of the --client or --user")
        purge = sub.add_parser("purge-idempotency", help="delete idempotency records older than --days")
        purge.add_argument("--days", type=int, default=settings.WORKOUT_API_IDEMPOTENCY_DAYS)

    @staticmethod
    def _owner(parser: CommandParser, *, required: bool = True) -> None:
        owner = parser.add_mutually_exclusive_group(required=required)
        owner.add_argument("--client", help="the client's code")
        owner.add_argument("--user", help="a member of staff's username")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action'].replace('-', '_')}")(options)
        except WorkoutError as error:
            raise CommandError(error.message) from error

    def _ids(self, options: dict[str, Any]) -> tuple[int | None, int | None]:
        client_id = user_id = None
        if options.get("client"):
            client = Client.objects.filter(code=options["client"]).first()
            if client is None:
                raise CommandError(f"no client {options['client']!r}")
            client_id = client.pk
        if options.get("user"):
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
            user_id = user.pk
        return client_id, user_id

    def _create(self, options: dict[str, Any]) -> None:
        client_id, user_id = self._ids(options)
        with self.operation() as run:
            issued = api_token_create(
                client_id=client_id,
                user_id=user_id,
                days=options["days"],
                name=options["name"],
                actor=self.actor,
                system_actor=self.system_actor,
            )
            run.outcome = {"created": issued.token.prefix, "expires_at": issued.token.expires_at}  # never the secret
        self.stdout.write(issued.secret)
        self.stderr.write(
            f"token {TOKEN_START}{issued.token.prefix} expires {issued.token.expires_at:%Y-%m-%d %H:%M} UTC; "
            "it is shown only now: give it to its holder over a secure channel"
        )

    def _list(self, options: dict[str, Any]) -> None:
        client_id, user_id = self._ids(options)
        tokens = ApiToken.objects.select_related("client", "user").order_by("created_at")
        if client_id is not None:
            tokens = tokens.filter(client_id=client_id)
        if user_id is not None:
            tokens = tokens.filter(user_id=user_id)
        now = timezone.now()
        for token in tokens:
            owner = f"client {token.client.code}" if token.client else f"user {token.user.get_username()}"  # type: ignore[union-attr]
            state = "revoked" if token.revoked_at else "expired" if token.expires_at <= now else "live"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{TOKEN_START}{token.prefix}  {owner}  {state}  expires {token.expires_at:%Y-%m-%d}  "
                f"last used {used}  {token.name}"
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        client_id, user_id = self._ids(options)
        if options["all"]:
            if client_id is None and user_id is None:
                raise CommandError("--all needs --client or --user")
            live = ApiToken.objects.filter(revoked_at__isnull=True)
            live = live.filter(client_id=client_id) if client_id is not None else live.filter(user__pk=user_id or 0)
            prefixes = list(live.values_list("prefix", flat=True))
        elif options["prefix"]:
            prefixes = [_prefix(options["prefix"])]
        else:
            raise CommandError("name the token's prefix, or --all with --client or --user")
        # The prefix only: a whole token given to name it must not reach the audit trail.
        named = _prefix(options["prefix"]) if options["prefix"] else None
        with self.operation(prefix=named) as run:  # every token named, or none
            for prefix in prefixes:
                api_token_revoke(prefix=prefix, client_id=client_id, actor=self.actor, system_actor=self.system_actor)
            run.outcome = {"revoked": prefixes}
        for prefix in prefixes:
            self.stdout.write(f"revoked {TOKEN_START}{prefix}")

    def _purge_idempotency(self, options: dict[str, Any]) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        cutoff = timezone.now() - timedelta(days=options["days"])
        with self.operation() as run:
            deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
            run.outcome = {"deleted": deleted, "cutoff": cutoff}
        self.stdout.write(f"deleted {deleted} idempotency records older than {options['days']} days")


def _prefix(text: str) -> str:
    """wo_1a2b3c4d, 1a2b3c4d or the whole token wo_1a2b3c4d_<secret>: the prefix."""
    return text.removeprefix(TOKEN_START).split("_", 1)[0]

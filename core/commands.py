"""The base of every management command that changes state: `--actor`, and its run on the record (core.operations).

    class Command(OperationCommand):
        input_files = ("file",)            # options naming files read: recorded with their SHA-256

        def handle(self, *args, **options):
            with self.operation() as run:      # one transaction: the work, then the Operation and its event
                result = book_import(path=options["file"])
                run.outcome = {...}
            self.stdout.write(...)             # after the commit

`--actor USERNAME` names the member of staff the command is run for (an active user in a role other than client;
anyone else is refused before anything is done); without it the actor is "command:<os user>@<host>". Either
way the event also records the operating-system user and host the command ran as (`ran_as`), since `--actor`
is a claim made at a shell, not a sign-in. Pass `self.actor` / `self.system_actor` on to services that write
their own events, so that every event of the run names the same actor.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from core.errors import WorkoutError
from core.models import Operation, OperationChannel
from core.operations import (
    OperationRun,
    command_system_actor,
    file_sha256,
    operation,
    operation_actor,
    operation_record,
)

# Options every Django command has: how it runs, not what it does.
_RUN_OPTIONS = frozenset(
    {"help", "version", "verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color", "skip_checks"}
)


class OperationCommand(BaseCommand):
    """A command that changes state: adds `--actor`, and records each run that writes (core.operations)."""

    # The options whose values are paths of files the command reads: their SHA-256 is recorded beside them.
    input_files: ClassVar[tuple[str, ...]] = ()

    operation_name = ""
    actor: User | None = None
    system_actor = ""
    _argument_names: frozenset[str] = frozenset()
    _options: dict[str, Any]
    _started_at: datetime

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "--actor",
            metavar="USERNAME",
            help="the member of staff this is done for (recorded in the audit trail); default: the operating-system "
            "user, as command:<user>@<host>",
        )
        for sub in _subparsers(parser):  # `api_token create --actor sam` as well as `api_token --actor sam create`
            sub.add_argument("--actor", metavar="USERNAME", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        self.operation_name = self.operation_name or subcommand
        self._argument_names = frozenset(_destinations(parser)) - _RUN_OPTIONS - {"actor"}
        return parser

    def execute(self, *args: Any, **options: Any) -> Any:
        # Resolved before anything is done: an unknown --actor refuses the whole run.
        self._options = options
        self._started_at = timezone.now()
        if options.get("actor"):
            try:
                self.actor = operation_actor(options["actor"])
            except WorkoutError as error:
                raise CommandError(error.message) from error
            self.system_actor = ""
        else:
            self.actor = None
            self.system_actor = command_system_actor()
        return super().execute(*args, **options)

    def operation_run(self, **arguments: Any) -> OperationRun:
        """The run of this command: its arguments as given (plus `arguments`), each input file's SHA-256."""
        given = {name: value for name, value in self._options.items() if name in self._argument_names}
        for name in self.input_files:
            if given.get(name) is not None:
                given[f"{name}_sha256"] = file_sha256(given[name])
        if self.actor is not None:
            given["ran_as"] = command_system_actor()
        return OperationRun.start(
            name=self.operation_name,
            channel=OperationChannel.COMMAND,
            actor=self.actor,
            system_actor=self.system_actor,
            arguments={**given, **arguments},
            started_at=self._started_at,
        )

    @contextmanager
    def operation(self, **arguments: Any) -> Iterator[OperationRun]:
        """The work and its record in one transaction (see the module docstring)."""
        with operation(self.operation_run(**arguments)) as run:
            yield run

    def operation_record_after(self, run: OperationRun) -> Operation:
        """Record a run whose work could not share its transaction, right after the work. Callers say why."""
        with transaction.atomic():
            return operation_record(run)


class GeneratedDocCommand(BaseCommand):
    """A read-only command that prints a document generated from the code; `--write` updates its file under docs/
    (a test compares the two, so a change of the code that changes the document fails until it is written)."""

    doc = ""  # the file's name under docs/

    def generate(self) -> str:
        raise NotImplementedError

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--write", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        text = self.generate()
        if options["write"]:
            path = Path(settings.BASE_DIR) / "docs" / self.doc
            path.write_text(text)
            self.stdout.write(f"wrote {path}")
        else:
            self.stdout.write(text)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [
        sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for sub in action.choices.values()
    ]


def _destinations(parser: argparse.ArgumentParser) -> Iterator[str]:
    for action in parser._actions:
        if action.dest != argparse.SUPPRESS:
            yield action.dest
    for sub in _subparsers(parser):
        yield from _destinations(sub)

"""manage.py demo_workflow_clear: the demo's reset of the workflow (cases and everything hanging off them), so
that `make demo` can replace the book again. DEBUG only: a deployment never deletes cases."""

from __future__ import annotations

from typing import Any

import pgtrigger
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management.base import CommandError
from django.db import connection

from core.commands import OperationCommand
from restructuring.models import (
    Agreement,
    Approval,
    Case,
    CollateralDemand,
    Contact,
    Document,
    FeasibilityReport,
    Installment,
    LiquidationOrder,
    LiquidationPlan,
    Note,
    Notification,
    PromiseToPay,
    Proposal,
    ReductionOrder,
    Repayment,
    RepaymentAllocation,
)

# Append-only tables (a trigger refuses DELETE): the demo's reset empties them with TRUNCATE, which no row trigger
# sees, all in one statement since they refer to one another.
_APPEND_ONLY = (RepaymentAllocation, Repayment, PromiseToPay, Contact, Note, Document)
# The agreements are referred to by the proposals (the one each was sent with), which TRUNCATE refuses whatever the
# rows hold: they are deleted with their trigger set aside, for this transaction only.
_AGREEMENT_TRIGGER = "restructuring.Agreement:agreement_append_only"


class Command(OperationCommand):
    help = "Delete every case with its proposals, reports, plans and notifications (DEBUG only; the audit trail stays)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_workflow_clear deletes cases: it runs only with DEBUG=true")
        with self.operation() as run:
            counts = {str(m._meta.verbose_name_plural): m.objects.count() for m in _APPEND_ONLY}
            # the agreements' and documents' files go with their rows; the proposals let go of their agreements first
            kept = [*Agreement.objects.values_list("file", flat=True), *Document.objects.values_list("file", flat=True)]
            Proposal.objects.exclude(agreement=None, accepted_agreement=None).update(
                agreement=None, accepted_agreement=None
            )
            if connection.vendor == "postgresql":
                tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in _APPEND_ONLY)
                with connection.cursor() as cursor:
                    # Foreign-key checks still pending in this transaction would make TRUNCATE refuse: run them now.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    cursor.execute(f"TRUNCATE {tables}")
            else:
                for append_only in _APPEND_ONLY:
                    append_only.objects.all().delete()
            with pgtrigger.ignore(_AGREEMENT_TRIGGER):
                counts[str(Agreement._meta.verbose_name_plural)] = Agreement.objects.all().delete()[0]
            for model in (
                Installment,  # what an executed proposal leaves, then the proposals
                Approval,
                CollateralDemand,
                ReductionOrder,
                Proposal,
                FeasibilityReport,
                LiquidationOrder,
                LiquidationPlan,
                Notification,
                Case,
            ):
                counts[str(model._meta.verbose_name_plural)] = model.objects.all().delete()[0]
            for name in kept:
                default_storage.delete(name)
            run.outcome = {"deleted": counts}
        self.stdout.write("cleared: " + ", ".join(f"{n} {name}" for name, n in counts.items()))

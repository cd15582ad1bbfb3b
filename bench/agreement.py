"""The restructuring agreement's PDF: how long drawing it takes (core/pdf.py, WeasyPrint on Pango), the time an
offer's send spends on it, by the length of its schedule. No database: the template's context is built here, in
the shape restructuring/selectors/agreement_document.py gives it.

Prints one JSON object on its last line (figures: bench/README.md)."""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import common  # noqa: F401  (the path and the settings first)

RUNS = 7


def _context(installments: int) -> dict[str, Any]:
    from restructuring.selectors.agreement_document import ReductionLine
    from restructuring.selectors.schedules import ScheduleRow
    from restructuring.terms import Terms

    start = date(2027, 1, 15)
    principal = Decimal("250000.00")
    part = (principal / installments).quantize(Decimal("0.01"))
    rows = [
        ScheduleRow(
            number=k,
            due=start + timedelta(days=30 * k),
            principal=part,
            interest=Decimal("1234.56"),
            arrears=Decimal("0.00"),
            total=part + Decimal("1234.56"),
            balance=principal - part * k,
        )
        for k in range(1, installments + 1)
    ]
    now = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
    client = SimpleNamespace(name="Meridian Capital Partners Ltd", code="C-004211")
    account = SimpleNamespace(code="MA-004211-01", base_currency="USD")
    return {
        "lender_name": "Workout Lending",
        "proposal": SimpleNamespace(pk=4711, round=2, version=3, offered_at=now, expires_at=now + timedelta(hours=72)),
        "terms_hash": "9" * 64,
        "case": SimpleNamespace(pk=812),
        "account": account,
        "client": client,
        "currency": "USD",
        "terms": Terms(
            term_months=installments,
            rate_annual=Decimal("0.065"),
            collateral_to_add=Decimal("15000.00"),
            principal_haircut=Decimal("5000.00"),
            reduce=((901, Decimal("0.25")), (902, Decimal("0.5"))),
        ),
        "schedule": rows,
        "schedule_basis": "preview",
        "schedule_total": sum((r.total for r in rows), Decimal(0)),
        "loan_before": {
            "principal": Decimal("255000.00"),
            "rate_annual": Decimal("0.08"),
            "accrued_interest": Decimal("1840.22"),
            "maturity_date": None,
        },
        "loan_after": {
            "principal": principal,
            "rate_annual": Decimal("0.065"),
            "maturity_date": rows[-1].due,
            "installments": installments,
            "level_payment": rows[0].total,
            "total_interest": Decimal("1234.56") * installments,
            "total_paid": sum((r.total for r in rows), Decimal(0)),
        },
        "rate_before_pct": "8.00\u00a0%",
        "rate_after_pct": "6.50\u00a0%",
        "reductions": [
            ReductionLine(901, "BTC", "12.5", "25.00\u00a0%", "3.125"),
            ReductionLine(902, "ETH", "140", "50.00\u00a0%", "70"),
        ],
        "collateral_due_days": 7,
        "payment_grace_days": 5,
        "as_of": now.date(),
    }


def _machine() -> dict[str, Any]:
    """common.machine() without the database (this benchmark reads none)."""
    import os
    import platform
    from pathlib import Path

    import weasyprint

    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "weasyprint": weasyprint.__version__,
        "date": datetime.now(UTC).date().isoformat(),
    }


def main() -> None:
    import django

    started = time.perf_counter()
    import weasyprint  # noqa: F401  (what the first agreement of a process pays besides)

    import_s = time.perf_counter() - started
    django.setup()
    from core.pdf import pdf_render
    from restructuring.selectors.agreement_document import AGREEMENT_TEMPLATE

    figures: dict[str, Any] = {"benchmark": "agreement", "weasyprint_import_s": round(import_s, 3)}
    first = time.perf_counter()
    pdf_render(AGREEMENT_TEMPLATE, _context(12), language="en")
    figures["first_render_s"] = round(time.perf_counter() - first, 3)  # fonts found and loaded once per process
    for installments in (12, 36, 120):
        for language in ("en", "de"):
            context = _context(installments)
            times, outputs = [], set()
            for _ in range(RUNS):
                t0 = time.perf_counter()
                rendered = pdf_render(AGREEMENT_TEMPLATE, context, language=language)
                times.append(time.perf_counter() - t0)
                outputs.add(rendered.sha256)
            key = f"{installments}_{language}"
            figures[f"render_{key}_s"] = round(statistics.median(times), 3)
            figures[f"bytes_{key}"] = len(rendered.pdf)
            figures[f"same_bytes_{key}"] = len(outputs) == 1
    figures["machine"] = _machine()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

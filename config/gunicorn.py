"""gunicorn settings for the web service (docker-compose.yml, Dockerfile, bench/api_load.py).

Sync workers, cores + 1 of them. Each worker loads WeasyPrint (the agreements' PDFs) before its first request. After
each worker has loaded the app, everything it allocated is frozen out of the garbage collector's generations: the
periodic full collections that otherwise walk every Django object were the long tail of the API's latency (p99 72
ms -> 14-40 ms on reads, bench/README.md)."""

from __future__ import annotations

import gc
import multiprocessing
import os
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() + 1))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))


def post_worker_init(worker: Any) -> None:
    # WeasyPrint with Pango and the fonts, loaded before the first request: sending an offer draws its agreement,
    # and the first drawing in a process would otherwise take a second or two longer (core/pdf.py).
    from core.pdf import pdf_warm

    pdf_warm()
    gc.collect()
    gc.freeze()

"""The Celery app. Broker and behaviour come from Django settings (`CELERY_*`)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# numpy's BLAS threads fight the worker processes for the two cores; parallelism comes from processes.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

app = Celery("workout")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

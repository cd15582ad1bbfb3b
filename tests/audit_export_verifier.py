"""The documented outside verifier of the audit export (docs/verify_audit_export.py), loaded from its file: the
tests recompute the export's hashes with it, code that imports nothing from the application."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "verify_audit_export.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_audit_export", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verifier = _load()

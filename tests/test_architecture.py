"""The layers hold (docs/architecture.md): core < accounts < rules < restructuring, each importing only those
below it; no cycle inside a layer but the one named; the pure modules import no Django. import-linter checks the
contracts of pyproject.toml (`make lint`); these tests hold that the contracts say so and that they are kept."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from django.conf import settings

ROOT = Path(settings.BASE_DIR).resolve()
LAYERS = ["restructuring", "rules", "accounts", "core"]  # top first, as import-linter reads them
PURE = [
    "accounts.risk",
    "restructuring.liquidation",
    "restructuring.feasibility",
    "restructuring.schedules",
    "restructuring.terms",
    "restructuring.cascade",
    "rules.expressions",
    "rules.engine",
    "rules.schema",
    "rules.actions",
]


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def test_the_layers_are_declared_and_nothing_is_let_off() -> None:
    # the apps' layers (a layers contract inside one package names its `containers`)
    layers = [c for c in _contracts() if c["type"] == "layers" and "containers" not in c]
    assert [c["layers"] for c in layers] == [LAYERS]
    # the compliance pages have left core for restructuring: no import is let off the layers
    assert not layers[0].get("ignore_imports")


def test_every_pure_module_is_under_the_purity_contract() -> None:
    guarded = {
        module
        for c in _contracts()
        if c["type"] == "forbidden" and {"django", "core"} <= set(c["forbidden_modules"])
        for module in c["source_modules"]
    }
    assert not set(PURE) - guarded, f"not guarded: {sorted(set(PURE) - guarded)}"


def test_the_pure_modules_import_without_django() -> None:
    # What the contract says statically, at run time too (a dynamic import escapes import-linter).
    code = (
        f"import importlib, sys\nfor m in {PURE!r}: importlib.import_module(m)\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'django', 'rest_framework', 'celery', 'core'}))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_the_import_contracts_are_kept() -> None:
    run = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout

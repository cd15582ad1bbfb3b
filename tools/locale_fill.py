"""Fill a locale's catalogue from a table of translations (msgid -> text), then compile it, with Babel (the pinned
dependency; no gettext tools needed): `python tools/locale_fill.py de /path/to/table.py`. Used once to ship the German
catalogue; later edits go straight into locale/<code>/LC_MESSAGES/django.po and `python tools/locale_fill.py de`
recompiles."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent


def main(language: str, table: str | None = None) -> int:
    po_path = ROOT / "locale" / language / "LC_MESSAGES" / "django.po"
    with po_path.open("rb") as f:
        catalog = read_po(f, locale=language)
    if table:
        values = runpy.run_path(table)
        for message in catalog:
            if not message.id:
                continue
            if isinstance(message.id, tuple):
                text = values.get("PLURALS", {}).get(message.id[0])
                if text:
                    message.string = text
            elif message.id in values["DE"]:
                message.string = values["DE"][message.id]
            if "fuzzy" in message.flags:
                message.flags.discard("fuzzy")
        with po_path.open("wb") as f:
            write_po(f, catalog, omit_header=False, width=120)
    with po_path.with_suffix(".mo").open("wb") as f:
        write_mo(f, catalog)
    missing = [m.id for m in catalog if m.id and not m.string]
    print(f"{po_path}: {len(catalog) - len(missing) - 1} translated, {len(missing)} falling back to English")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

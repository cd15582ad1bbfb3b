"""Fill a locale's catalogue from a table of translations, then compile it, with Babel (the pinned dependency; no
gettext tools needed): `python tools/locale_fill.py de /path/to/table.py`, the table a Python file with DE
(msgid -> text), PLURALS (singular msgid -> (singular, plural)) and CONTEXTS ((context, msgid) -> text). It fills
what is empty or fuzzy (a fuzzy guess of makemessages is replaced, never kept), drops the guesses' previous msgids
and the header's fuzzy flag, and says what is still in English. Without a table it recompiles. After `manage.py
makemessages` (the catalogue's header says how it is run) this is how new strings get their German;
tests/web/test_language.py checks that none is left empty and that GNU msgfmt --check passes."""

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
        singular, plurals, contexts = values.get("DE", {}), values.get("PLURALS", {}), values.get("CONTEXTS", {})
        for message in catalog:
            if not message.id:
                continue
            empty = not all(message.string or ()) if isinstance(message.id, tuple) else not message.string
            if not (empty or "fuzzy" in message.flags):
                continue
            key = message.id[0] if isinstance(message.id, tuple) else message.id
            if message.context:
                text = contexts.get((message.context, key))
            else:
                text = (plurals if isinstance(message.id, tuple) else singular).get(key)
            if text:
                message.string = text
                message.flags.discard("fuzzy")
            message.previous_id = []
        catalog.fuzzy = False
        with po_path.open("wb") as f:
            write_po(f, catalog, omit_header=False, width=120, include_previous=False)
    with po_path.with_suffix(".mo").open("wb") as f:
        write_mo(f, catalog)
    missing = [
        m.id
        for m in catalog
        if m.id and (not all(m.string or ()) if isinstance(m.id, tuple) else not m.string or "fuzzy" in m.flags)
    ]
    print(f"{po_path}: {len(catalog) - len(missing) - 1} translated, {len(missing)} falling back to English")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

from __future__ import annotations

from core.commands import GeneratedDocCommand
from restructuring.state_graph import case_state_mermaid


class Command(GeneratedDocCommand):
    help = "Print the case state graph (Mermaid) generated from the transitions; --write updates docs/case-states.md."
    doc = "case-states.md"

    def generate(self) -> str:
        return case_state_mermaid()

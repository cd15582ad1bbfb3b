"""The case state graph as Mermaid text, generated from the transitions on Case, so the documentation
(docs/case-states.md, written by `manage.py case_graph`) cannot drift from the code."""

from __future__ import annotations

from restructuring.models import CLOSED_STATES, Case

HEADER = """# Case states

Generated from `restructuring/models.py` by `manage.py case_graph --write`; a test fails when it is stale.
Closed states (no open case remains): {closed}.

```mermaid
stateDiagram-v2
"""


def case_state_mermaid() -> str:
    field = Case._meta.get_field("state")
    edges = sorted(
        {
            (source, transition.target, transition.name)
            for transition in field.get_all_transitions(Case)
            for source in ([transition.source] if isinstance(transition.source, str) else transition.source)
        }
    )
    lines = ["    [*] --> warning : sweep opens"]
    lines += [f"    {source} --> {target} : {name}" for source, target, name in edges]
    lines += [f"    {state} --> [*]" for state in sorted(str(s) for s in CLOSED_STATES)]
    closed = ", ".join(sorted(str(s) for s in CLOSED_STATES))
    return HEADER.format(closed=closed) + "\n".join(lines) + "\n```\n"

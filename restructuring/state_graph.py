"""The case state graph as Mermaid text, generated from the transitions on Case, so the documentation
(docs/case-states.md, written by `manage.py case_graph`) cannot drift from the code."""

from __future__ import annotations

from restructuring.models import CLOSED_STATES, Case

HEADER = """# Case states

Generated from `restructuring/models.py` by `manage.py case_graph --write`; a test fails when it is stale.
Closed states (no open case remains): {closed}.

What happens to a case's proposals (`restructuring/services/case_end.py`, `negotiation/`):

- A case that leaves negotiation takes its proposals with it: when it is restructured, sent to liquidation,
  cured, defaulted or closed, every other proposal still in play (draft, pending approval, approved, offered)
  is withdrawn, with the reason, one `proposal.withdraw` audit event each, in the transaction that moved it.
- One rule after an offer is declined or expires: the case returns to `proposed` while it has other proposals in
  play (pending approval or approved); those stay approvable and offerable. With none left it returns to
  `margin_call` (`return_to_proposals` against `decline` / `expire_offer` below).
- A liquidation proposal (the rules', or an officer's "Propose liquidation") is never offered: once approved by
  someone who is not its maker, it is carried out and the case goes to `liquidating`. Only the margin call's
  deadline sends a case to liquidation without a proposal.

Promises to pay (`restructuring/services/promises.py`) move no state. A broken promise reopens the case for
action: `Case.follow_up_since` is set (audited `case.follow_up`), so the case, in whatever open state it is, waits
for staff again until an officer logs a contact or takes a new promise (`case.followed_up`). A restructured case
whose installments stay unpaid still defaults by the schedule's grace (`restructured --> defaulted`), promise or not.

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

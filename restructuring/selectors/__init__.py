"""The reads of the case workflow, one module per page or reader; no writes here.

- `queue`: the officer's queue of open cases, filtered and ordered by urgency.
- `case_page`: everything the officer's page of one case shows.
- `events`: the events of a case, `case_events(case, audience)`, one definition for officers, compliance and
  clients.
- `compliance`: the audit trail's search, paging and a case's printable history.
- `client`, `offers`: what a client reads through the API (its cases, offers, loans, top-ups; an offer's schedule
  and what it changes).
- `schedules`: repayment schedules as rows, built or stored.
- `feasibility`, `rule_facts`: what the feasibility engine and the rules see of each case; stored reports read
  back; the cases a lost task still owes.
- `staff`: the staff page.

What runs the model on what is read (valuing terms, previewing them, recomputing a report) is the feasibility
service's (restructuring/services/feasibility.py): it computes, where these read.
"""

from __future__ import annotations

from typing import Any

# The names `restructuring.selectors` held when it was one module, found in their new homes on first use (imported
# lazily: a submodule importing a service at load would otherwise make a cycle with the services importing
# selectors). New code imports from the submodule.
_MOVED = {
    "CaseFacts": "feasibility",
    "DISTRESSED_STATES": "feasibility",
    "feasibility_facts_load": "feasibility",
    "reports_load": "feasibility",
    "RESTRUCTURED_STATES": "rule_facts",
    "RuleFacts": "rule_facts",
    "rule_facts_load": "rule_facts",
    "StaffRow": "staff",
    "staff_members_load": "staff",
    "client_proposals": "client",
}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_MOVED[name]}"), name)

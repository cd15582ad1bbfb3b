from __future__ import annotations

from pathlib import Path

from restructuring.state_graph import case_state_mermaid

DOC = Path(__file__).resolve().parents[2] / "docs" / "case-states.md"


def test_the_documented_graph_is_the_one_the_code_defines() -> None:
    # if this fails: `manage.py case_graph --write` and commit docs/case-states.md
    assert DOC.read_text() == case_state_mermaid()


def test_the_graph_has_every_edge_of_the_architecture() -> None:
    text = case_state_mermaid()
    for edge in [
        "warning --> margin_call : issue_margin_call",
        "margin_call --> proposed : propose",
        "proposed --> margin_call : reject",
        "proposed --> offered : offer",
        "offered --> accepted : accept",
        "offered --> margin_call : decline",
        "offered --> margin_call : expire_offer",
        "offered --> proposed : counter",
        "accepted --> restructured : execute",
        "restructured --> closed : close",
        "restructured --> defaulted : default",
        "defaulted --> liquidating : liquidate",
        "margin_call --> liquidating : liquidate",
        "liquidating --> liquidated : complete_liquidation",
        "liquidated --> written_off : write_off",
        "warning --> cured : cure",
        "offered --> cured : cure",
    ]:
        assert edge in text, edge

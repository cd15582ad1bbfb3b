"""The case page's charts, drawn server-side by pygal as inline SVG: the risk history, the loss curve and the
recovery distribution. Plain data in (the stored figures), SVG text out; no Django, no query.

The SVG carries no script (pygal's tooltip script is an external file: left out, so the page needs nothing from
another site; its inline configuration is removed) and no XML declaration (it is inlined in the HTML); it scales
to its container (a viewBox, no fixed size).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import pygal
from django.utils.translation import gettext as _
from pygal.style import Style

from core.money import money_text

_STYLE = Style(
    background="transparent",
    plot_background="#ffffff",
    foreground="#1d2330",
    foreground_strong="#1d2330",
    foreground_subtle="#d8dde6",
    opacity=".35",
    opacity_hover=".6",
    colors=("#1f5fbf", "#b42318", "#b54708", "#067647", "#5b6474"),
    font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=11,
    title_font_size=13,
    value_font_size=10,
    tooltip_font_size=11,
)

_COMMON: dict[str, Any] = {
    "style": _STYLE,
    "js": [],
    "disable_xml_declaration": True,
    "width": 640,
    "height": 400,
    "legend_at_bottom": True,
    "legend_at_bottom_columns": 2,
    "margin": 10,
    "margin_bottom": 16,
    "show_dots": False,
    "truncate_legend": -1,
}


def _money(currency: str) -> Any:
    """An axis or value label: whole units of `currency`, by the reader's locale (core.money.money_text)."""
    return lambda value: money_text(value, currency, places=0)


def _without_scripts(root: Any) -> Any:
    """pygal writes its configuration as an inline script for its (absent) tooltip script: drop it, so the page
    runs no inline script (a strict Content-Security-Policy stays possible)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def _svg(chart: Any) -> str:
    chart.add_xml_filter(_without_scripts)
    return str(chart.render(is_unicode=True))


def risk_history(snapshots: Sequence[Mapping[str, Any]], currency: str = "USD") -> str:
    """Equity against the maintenance and initial requirements over time, one point per risk snapshot."""
    if not snapshots:
        return ""
    chart = pygal.DateTimeLine(
        title=_("Risk history: equity and requirements"),
        x_value_formatter=lambda at: at.strftime("%d %b %H:%M"),
        value_formatter=_money(currency),
        x_label_rotation=20,
        show_dots=len(snapshots) < 40,
        dots_size=2.5,
        **{k: v for k, v in _COMMON.items() if k != "show_dots"},
    )
    times: list[datetime] = [s["computed_at"] for s in snapshots]
    for label, key in (
        (_("equity"), "equity"),
        (_("maintenance requirement"), "maintenance_requirement"),
        (_("initial requirement"), "initial_requirement"),
    ):
        chart.add(label, [(t, float(s[key])) for t, s in zip(times, snapshots, strict=True)])
    return _svg(chart)


def loss_curve(
    curve: Mapping[str, Sequence[Any]],
    maintenance_now: Decimal | None,
    equity_now: Decimal | None,
    currency: str = "USD",
) -> str:
    """Equity (account value less debt) against a uniform move of every price, from the feasibility report, with
    the maintenance requirement over the same moves.

    The requirement is today's scaled by (1 + move): exact for a standard-margin book of spot and linear
    positions (their requirement is a rate times a notional that moves with the price), an approximation for
    options and portfolio margin. Where the two lines cross is the distance to liquidation."""
    moves = [float(m) for m in curve.get("moves", [])]
    equity = [float(e) for e in curve.get("equity", [])]
    if not moves or len(moves) != len(equity):
        return ""
    chart = pygal.XY(
        title=_("Loss curve: equity against a uniform price move"),
        x_title=_("price move"),
        x_value_formatter=lambda m: f"{m:+.0%}",
        value_formatter=_money(currency),
        show_dots=True,
        dots_size=2,
        **{k: v for k, v in _COMMON.items() if k != "show_dots"},
    )
    chart.add(_("equity"), list(zip(moves, equity, strict=True)))
    if maintenance_now is not None:
        level = float(maintenance_now)
        chart.add(_("maintenance requirement"), [(m, level * (1.0 + m)) for m in moves], show_dots=False)
    chart.add(_("zero"), [(moves[0], 0.0), (moves[-1], 0.0)], show_dots=False, stroke_style={"dasharray": "4, 4"})
    if equity_now is not None:
        chart.add(_("equity now (risk engine)"), [(0.0, float(equity_now))], dots_size=4)
    return _svg(chart)


def recovery_histogram(histogram: Mapping[str, Sequence[Any]], debt: Decimal | None, currency: str = "USD") -> str:
    """The distribution of what liquidating would recover, over the Monte Carlo paths (bars: paths per bin)."""
    edges = [float(e) for e in histogram.get("edges", [])]
    counts = [int(c) for c in histogram.get("counts", [])]
    if not counts or len(edges) != len(counts) + 1:
        return ""
    title = _("Recovery distribution (liquidation proceeds)")
    if debt is not None:
        title += ", " + _("debt %(amount)s") % {"amount": money_text(debt, currency)}
    chart = pygal.Histogram(
        title=title,
        x_value_formatter=_money(currency),
        x_label_rotation=20,
        y_title=_("paths"),
        **{**_COMMON, "show_legend": False},
    )
    chart.add(_("paths"), [(c, lo, hi) for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True)])
    return _svg(chart)


def cascade_costs(liquidate_all: Any, by_rules: Any, currency: str = "USD") -> str:
    """Bad debt and market impact of the two cascade scenarios, side by side (in the book's currency: the cascade
    simulates USD-based accounts)."""
    chart = pygal.Bar(title=_("What the fall costs the lender"), value_formatter=_money(currency), **_COMMON)
    chart.x_labels = [_("bad debt"), _("market impact")]
    chart.add(_("liquidate every breached account"), [float(liquidate_all.bad_debt), float(liquidate_all.impact_cost)])
    chart.add(_("restructure by the rules"), [float(by_rules.bad_debt), float(by_rules.impact_cost)])
    return _svg(chart)


def cascade_prices(liquidate_all: Any, by_rules: Any) -> str:
    """The shocked asset's price round by round as the forced sales feed on each other."""
    chart = pygal.Line(
        title=_("Price after each round of forced sales"), value_formatter=lambda v: f"{v:,.2f}", **_COMMON
    )
    rounds = max(len(liquidate_all.price_path), len(by_rules.price_path))
    chart.x_labels = [_("after the shock"), *(_("round %(n)s") % {"n": k} for k in range(1, rounds))]
    chart.add(_("liquidate every breached account"), list(liquidate_all.price_path))
    chart.add(_("restructure by the rules"), list(by_rules.price_path))
    return _svg(chart)

"""The queue as a django-tables2 table: what an officer decides on shown by default, at 1280 px without a
horizontal scroll (case, client, state, band, debt, shortfall, expected loss, the recommended proposal, assignee,
time in state against its SLA target, what it waits for), the rest behind the column chooser (`?show=<column>`).
Every column sorts (`?sort=<column>`, `-<column>` descending; empty figures last either way); without `sort`
the queue keeps its urgency order (restructuring/selectors/queue.py cases_for_queue)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import django_tables2 as tables
from django.db.models import F, Model, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_tables2.columns.base import BoundColumn
from django_tables2.rows import BoundRow
from django_tables2.utils import A, signature

from core.money import money_text
from restructuring import sla
from restructuring.models import Case
from restructuring.selectors.desk import queue_sla

# Shown unless the officer hides them; the optional columns are shown only when chosen.
DECISION_COLUMNS = (
    "case",
    "client",
    "state",
    "band",
    "debt",
    "shortfall",
    "expected_loss",
    "recommended",
    "assignee",
    "in_state",
    "waits_for",
)
OPTIONAL_COLUMNS = ("account", "group", "margin_ratio", "deadline", "recovery", "to_approve")
NUM = {"td": {"class": "num"}, "th": {"class": "num"}}
# What a case waits for, by SLA clock (restructuring/sla.py), in the reader's language.
WAITS_FOR = {
    sla.MARGIN_CALL_NO_PROPOSAL: _("Margin call without a proposal"),
    sla.PROPOSAL_PENDING_APPROVAL: _("Proposal pending approval"),
    sla.ACCEPTED_NOT_EXECUTED: _("Accepted offer not executed"),
    sla.BROKEN_PROMISE_NO_FOLLOW_UP: _("Broken promise not followed up"),
}


def _nulls_last(field: str) -> Any:
    def order(table: QueueTable, cases: QuerySet[Case], is_descending: bool) -> tuple[QuerySet[Case], bool]:
        key = F(field).desc(nulls_last=True) if is_descending else F(field).asc(nulls_last=True)
        return cases.order_by(key, "pk"), True

    return order


class MoneyColumn(tables.Column):
    """An amount in the case's account currency, by the locale machinery (core.money.money_text)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(attrs=NUM, **kwargs)

    def render(self, value: Any, record: Case) -> str:
        return money_text(value, record.account.base_currency)


class QueueTable(tables.Table):
    case = tables.Column(accessor="pk", verbose_name=_("Case"))
    account = tables.Column(accessor="account__code", verbose_name=_("Account"))
    client = tables.Column(accessor="account__client__name", verbose_name=_("Client"), attrs={"td": {"class": "wrap"}})
    group = tables.Column(accessor="account__client__group__code", verbose_name=_("Group"), default="")
    state = tables.Column(verbose_name=_("State"))
    band = tables.Column(accessor="risk_band", verbose_name=_("Band"), default="", attrs={"td": {"class": "wrap"}})
    margin_ratio = tables.Column(accessor="risk_margin_ratio", verbose_name=_("Margin ratio"), attrs=NUM)
    debt = MoneyColumn(verbose_name=_("Debt"))
    shortfall = MoneyColumn(verbose_name=_("Shortfall"))
    deadline = tables.Column(verbose_name=_("Deadline"))
    expected_loss = MoneyColumn(verbose_name=_("Expected loss"))
    recovery = MoneyColumn(accessor="recovery_expected", verbose_name=_("Recovery"))
    recommended = tables.Column(verbose_name=_("Recommended"), empty_values=(), attrs={"td": {"class": "wrap"}})
    to_approve = tables.Column(accessor="pending_approval", verbose_name=_("To approve"), attrs=NUM)
    assignee = tables.Column(accessor="assignee__username", verbose_name=_("Assignee"), default="")
    in_state = tables.Column(accessor="in_state_since", verbose_name=_("In state / SLA"))
    # the band and what a case waits for wrap: their words are long in every language (Critical (negative equity))
    waits_for = tables.Column(
        accessor="sla_clock", verbose_name=_("Waits for"), default="", attrs={"td": {"class": "wrap"}}
    )

    order_debt = _nulls_last("debt")
    order_shortfall = _nulls_last("shortfall")
    order_expected_loss = _nulls_last("expected_loss")
    order_recovery = _nulls_last("recovery_expected")
    order_margin_ratio = _nulls_last("risk_margin_ratio")
    order_deadline = _nulls_last("deadline")
    order_recommended = _nulls_last("recommended")
    order_band = _nulls_last("risk_band")

    class Meta:
        model = Case
        fields: tuple[str, ...] = ()
        sequence = (
            "case",
            "account",
            "client",
            "group",
            "state",
            "band",
            "margin_ratio",
            "debt",
            "shortfall",
            "deadline",
            "expected_loss",
            "recovery",
            "recommended",
            "to_approve",
            "assignee",
            "in_state",
            "waits_for",
        )
        template_name = "restructuring/_queue_table.html"
        orderable = True
        attrs = {"class": "queue"}
        empty_text = _("No open case matches.")

    def __init__(self, *args: Any, shown: Iterable[str] = (), now: datetime | None = None, **kwargs: Any) -> None:
        hidden = [c for c in OPTIONAL_COLUMNS if c not in set(shown)]
        super().__init__(*args, exclude=hidden, order_by_field="sort", **kwargs)
        self.now = now or timezone.now()

    def page_rows(self) -> list[tuple[Case, SafeString]]:
        """The page's rows: each record with its cells' HTML (`<td>`s), every cell as django-tables2's BoundRow
        renders it (the value its accessor finds, a choice by its label, the column's default for an empty value,
        else the column's render method given the arguments it names), but with what django-tables2 works out per
        cell worked out once per column and page: the accessor's path and field, the render method's signature
        (inspect.signature, 550 times a page: a third of the page's rendering) and the cell's class. The cells are
        joined here rather than by a template loop per cell."""
        columns = [
            (bound, _td_open(bound), _value_of(bound, Case), _renderer(bound), bound.column.empty_values)
            for bound in self.columns
        ]
        rows = []
        for row in self.page.object_list:
            record = row.record
            cells = []
            for bound, td_open, value_of, render, empty in columns:
                value = value_of(record)
                content = bound.default if value in empty else render(row, value)
                cells.append(td_open + conditional_escape(content) + "</td>")
            rows.append((record, mark_safe("".join(cells))))  # noqa: S308 (each part escaped above)
        return rows

    def order_in_state(self, cases: QuerySet[Case], is_descending: bool) -> tuple[QuerySet[Case], bool]:
        # time in state grows as its start recedes: ascending time is descending start
        key = F("in_state_since").asc() if is_descending else F("in_state_since").desc()
        return cases.order_by(key, "pk"), True

    def order_waits_for(self, cases: QuerySet[Case], is_descending: bool) -> tuple[QuerySet[Case], bool]:
        # the SLA clocks' due times: the sort keys carry them only when asked (or when the `sla` filter added them)
        if "sla_due_at" not in cases.query.annotations:
            cases = queue_sla(cases, self.now)
        return _nulls_last("sla_due_at")(self, cases, is_descending)

    def order_case(self, cases: QuerySet[Case], is_descending: bool) -> tuple[QuerySet[Case], bool]:
        return cases.order_by("-pk" if is_descending else "pk"), True

    def render_case(self, value: int) -> str:
        return format_html('<a href="{}">#{}</a>', reverse("case", args=[value]), value)

    def render_account(self, value: str, record: Case) -> str:
        return format_html('<a href="{}">{}</a>', reverse("case", args=[record.pk]), value)

    def render_client(self, value: str, record: Case) -> str:
        client = record.account.client
        return format_html('{} <span class="badge" title="credit tier">{}</span>', value, client.credit_tier)

    def render_state(self, value: str, record: Case) -> str:
        # `value` is the choice's label (django-tables2 shows a choice field's display); the class is the state
        return format_html('<span class="badge {}">{}</span>', record.state, record.get_state_display())

    def render_band(self, value: str, record: Case) -> str:
        return format_html('<span class="badge {}">{}</span>', value, getattr(record, "band_label", value))

    def render_margin_ratio(self, value: Any) -> str:
        return f"{value:.3f}"

    def render_deadline(self, value: datetime) -> str:
        overdue = value < self.now
        return format_html(
            '<span class="{}" title="{} UTC">{}</span>',
            "error" if overdue else "",
            value.strftime("%Y-%m-%d %H:%M"),
            deadline_left(value, self.now),
        )

    def render_to_approve(self, value: int, record: Case) -> str:
        flagged = getattr(record, "flagged_approval", 0)
        text = format_html("<strong>{}</strong>", value) if value else ""
        if flagged:
            text += format_html(
                ' <span class="badge warning" data-flagged="{}" title="{}">{}</span>',
                flagged,
                _("pending proposals the model advises against: approving needs an override reason"),
                ngettext("%(n)d flagged", "%(n)d flagged", flagged) % {"n": flagged},
            )
        return text

    def render_in_state(self, value: datetime, record: Case) -> str:
        waited = duration_text((self.now - value).total_seconds())
        target = getattr(record, "sla_target_hours", None)
        if target is None:
            return waited
        breached = getattr(record, "sla_breached", False)
        return format_html(
            '<span class="{}" data-sla-breached="{}">{} / {}</span>',
            "error" if breached else "",
            "1" if breached else "0",
            waited,
            duration_text(float(target) * 3600),
        )

    def render_recommended(self, value: str | None, record: Case) -> str:
        """The latest report's recommendation by the proposal's name; a report that recommends none says liquidate
        (no affordable restructuring beats it); no report yet, nothing."""
        if value:
            return value.replace("_", " ")
        return str(_("liquidate")) if getattr(record, "expected_loss", None) is not None else ""

    def render_waits_for(self, value: str) -> str:
        return str(WAITS_FOR.get(value, value))


def _td_open(bound: BoundColumn) -> str:
    """A column's opening `<td>` with its class (static for every column of the queue)."""
    css = (bound.column.attrs.get("td") or {}).get("class") or ""
    return format_html('<td class="{}">', css) if css else "<td>"


def _value_of(bound: BoundColumn, model: type[Case]) -> Callable[[Any], Any]:
    """How django-tables2 finds a cell's value (django_tables2/rows.py BoundRow._get_and_render_with), worked out
    once per column: along the accessor's attributes (None past a missing one), or the label of a choice when the
    accessor ends at a model field with choices."""
    accessor = A(bound.accessor)
    bits = accessor.bits
    field = accessor.get_field(model)
    display = f"get_{bits[-1]}_display" if bits and getattr(field, "choices", None) else ""

    def value(record: Any) -> Any:
        current = record
        for k, bit in enumerate(bits):
            if display and k == len(bits) - 1 and isinstance(current, Model):
                return getattr(current, display)()
            current = getattr(current, bit, None)
            if current is None:
                return None
        return current

    return value


def _renderer(bound: BoundColumn) -> Callable[[BoundRow, Any], Any]:
    """The column's render, called as django_tables2.utils.call_with_appropriate calls it (the arguments its
    signature names, or all of them to a `**kwargs`; not at all if it names one it cannot be given), with the
    signature read once."""
    render = bound.render
    names, catch_all = signature(render)
    link = bound.link

    def call(row: BoundRow, value: Any) -> Any:
        given = {
            "value": value,
            "record": row.record,
            "column": bound.column,
            "bound_column": bound,
            "bound_row": row,
            "table": row.table,
        }
        if catch_all:
            content = render(**given)
        elif all(name in given for name in names):
            content = render(**{name: given[name] for name in names})
        else:
            content = None
        return link(content, **given) if link else content

    return call


def duration_text(seconds: float) -> str:
    """A duration in its two largest units: "3d 4h", "2h 10m", "45m"."""
    minutes = int(abs(seconds) // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m"


def deadline_left(deadline: datetime | None, now: datetime) -> str:
    """The time to a deadline in its two largest units: "in 3d 4h", "in 2h 10m", "45m overdue"."""
    if deadline is None:
        return ""
    seconds = (deadline - now).total_seconds()
    text = duration_text(seconds)
    return _("in %(time)s") % {"time": text} if seconds >= 0 else _("%(time)s overdue") % {"time": text}

"""`{{ column|td_class }}`: a queue column's cell class, worked out once per column and page rather than once per
cell (django-tables2 rebuilds a column's attributes on every access: a third of the queue page's time)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def td_class(column: Any) -> str:
    cached = getattr(column, "_td_class", None)
    if cached is None:
        cached = (column.attrs.get("td") or {}).get("class") or ""
        column._td_class = cached
    return str(cached)

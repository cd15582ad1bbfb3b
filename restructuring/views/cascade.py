"""The cascade page: a fall in one asset, liquidating every breached account against restructuring by the rules
(restructuring/services/cascade.py), with its charts. Read-only: nothing is stored or moved."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.access import staff_view
from core.errors import WorkoutError
from core.forms import DecimalTextField
from restructuring import charts
from restructuring.services.cascade import cascade_compare


class CascadeForm(forms.Form):
    symbol = forms.CharField(max_length=64, initial="BTC")
    drop = DecimalTextField(
        min_value=Decimal("0.01"),
        max_value=Decimal("0.99"),
        decimal_places=4,
        initial="0.3",
        help_text="0.3: a 30% fall",
    )


@staff_view("restructuring.view_case")
def cascade_page(request: HttpRequest) -> HttpResponse:
    form = CascadeForm(request.GET or None)
    context: dict[str, object] = {"form": form}
    if form.is_bound and form.is_valid():
        try:
            comparison = cascade_compare(symbol=form.cleaned_data["symbol"], drop=float(form.cleaned_data["drop"]))
        except WorkoutError as exc:
            form.add_error(exc.context.get("field") or None, str(exc))
        else:
            context.update(
                comparison=comparison,
                costs_chart=charts.cascade_costs(comparison.liquidate_all, comparison.by_rules),
                prices_chart=charts.cascade_prices(comparison.liquidate_all, comparison.by_rules),
            )
    return render(request, "restructuring/cascade.html", context)

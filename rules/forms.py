"""The rule editor's form: a rule's fields, and one field per parameter of the chosen action (rules/actions.py).

The form only parses what was typed; whether the rule is sound (facts, types, parameters, where an expression
goes wrong) is `rules.services.rule_check`'s to say, and its error is put on the field it names.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from rules.actions import ACTIONS, Parameter
from rules.models import Action, Rule
from rules.services import RuleValidationError

PARAMETER_PREFIX = "p_"


def _live(check_url: str, trigger: str) -> dict[str, str]:
    """htmx attributes that post the whole form to the check endpoint (validation as you type)."""
    return {
        "hx-post": check_url,
        "hx-trigger": trigger,
        "hx-target": "#rule-check",
        "hx-include": "closest form",
        "hx-sync": "closest form:replace",
        "autocomplete": "off",
        "spellcheck": "false",
    }


TYPING = "keyup changed delay:300ms, change"


def _bounds(parameter: Parameter) -> str:
    if parameter.lower is None and parameter.upper is None:
        return ""
    low = f"{parameter.lower:g}" if parameter.lower is not None else "-inf"
    high = f"{parameter.upper:g}" if parameter.upper is not None else "inf"
    return " " + gettext("(from %(low)s to %(high)s)") % {"low": low, "high": high}


class RuleForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    priority = forms.IntegerField(label=_("Priority"), initial=100, help_text=_("lower runs first"))
    condition = forms.CharField(
        label=_("Condition"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text=_("true or false, over the facts: shortfall_pct < 0.05 and credit_tier in ['A', 'B']"),
    )
    action = forms.ChoiceField(label=_("Action"), choices=Action.choices)
    package = forms.CharField(
        label=_("Package"),
        max_length=100,
        required=False,
        help_text=_("fired actions with the same package make one proposal (default: the name)"),
    )
    stop_processing = forms.BooleanField(
        label=_("Stop processing"), required=False, help_text=_("a case this rule fires for is seen by no later rule")
    )
    description = forms.CharField(
        label=_("Description"), widget=forms.Textarea(attrs={"rows": 2, "cols": 70}), required=False
    )

    def __init__(self, *args: Any, check_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action_name = self._chosen_action()
        for parameter in ACTIONS.get(self.action_name, ()):
            self.fields[PARAMETER_PREFIX + parameter.name] = self._parameter_field(parameter)
        for field in self.fields.values():
            typed = isinstance(field.widget, forms.TextInput | forms.Textarea)  # a choice or a box: on change
            field.widget.attrs.update(_live(check_url, TYPING if typed else "change"))

    def _chosen_action(self) -> str:
        if self.is_bound:
            return str(self.data.get("action", ""))
        return str(self.initial.get("action", Action.EXTEND_TERM))

    @staticmethod
    def _parameter_field(parameter: Parameter) -> forms.Field:
        label = f"{parameter.name}"
        if parameter.choices:
            return forms.ChoiceField(
                label=label,
                choices=[(c, c) for c in parameter.choices],
                initial=parameter.default,
                required=False,
                help_text=gettext(parameter.description),
            )
        default = "; " + gettext("default %(value)s") % {"value": parameter.default} if parameter.default else ""
        return forms.CharField(
            label=label,
            required=False,
            help_text=gettext("%(description)s: a number expression") % {"description": gettext(parameter.description)}
            + _bounds(parameter)
            + default,
            widget=forms.TextInput(attrs={"size": 50}),
        )

    @property
    def parameter_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(PARAMETER_PREFIX)]

    @property
    def rule_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if not name.startswith(PARAMETER_PREFIX)]

    @classmethod
    def initial_of(cls, rule: Rule) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "name": rule.name,
            "priority": rule.priority,
            "condition": rule.condition,
            "action": rule.action,
            "package": rule.package,
            "stop_processing": rule.stop_processing,
            "description": rule.description,
        }
        for key, value in (rule.parameters or {}).items():
            initial[PARAMETER_PREFIX + key] = str(value)
        return initial

    def rule(self) -> dict[str, Any]:
        """The rule as rules.services takes it (after is_valid); empty parameters are left to their defaults."""
        data = self.cleaned_data
        parameters = {
            name.removeprefix(PARAMETER_PREFIX): value.strip()
            for name, value in data.items()
            if name.startswith(PARAMETER_PREFIX) and isinstance(value, str) and value.strip()
        }
        return {
            "name": data["name"].strip(),
            "priority": data["priority"],
            "condition": data["condition"],
            "action": data["action"],
            "parameters": parameters,
            "package": (data.get("package") or "").strip() or data["name"].strip(),
            "stop_processing": bool(data.get("stop_processing")),
            "description": data.get("description") or "",
        }

    def field_of(self, error: RuleValidationError) -> str | None:
        """The form field a rule error names (a parameter's own field), or None for the form as a whole."""
        named = str(error.context.get("field") or "")
        if named in self.fields and not named.startswith(PARAMETER_PREFIX):
            return named
        if PARAMETER_PREFIX + named in self.fields:
            return PARAMETER_PREFIX + named
        return None

    def add_rule_error(self, error: RuleValidationError) -> None:
        self.add_error(self.field_of(error), str(error))


def check_url(rule_set_id: int) -> str:
    return reverse("rules-check", args=[rule_set_id])

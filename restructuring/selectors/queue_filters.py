"""The queue's filters, as a django-filter FilterSet: each query parameter, its validation, and the SQL it adds.

A bad value in one filter drops that filter only (django-filter leaves an invalid field out of `cleaned_data`).
The filters read no row themselves: the choices are the case states and bands (constants), the officer and
assignee are usernames matched in SQL, so building the set costs no query.

- `state`, `band`: one of the open states / health bands.
- `officer`: cases where that officer drafted, edited or approved a proposal.
- `assignee`: `me` (the signed-in user), `none` (unassigned), `team` (the teams the user leads or is on), or a
  username (restructuring/selectors/desk.py `cases_by_assignee`); absent, an officer's own cases when on a team.
- `sla`: `breached`, only the cases past their SLA target.
- `asset`: an instrument symbol held (directly, or as the underlying of a derivative held).
- `group`: a client group's code; `q`: account code, client code or name.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import HealthBand, Position
from restructuring.models import OPEN_STATES, Approval, Case, CaseState, Proposal
from restructuring.selectors.desk import cases_by_assignee, queue_sla


def open_case_states() -> list[tuple[str, str]]:
    """The open states with their labels, in the reader's language."""
    return [(value, str(label)) for value, label in CaseState.choices if value in OPEN_STATES]


class QueueFilterSet(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=open_case_states, empty_label=_("every open state"))
    band = django_filters.ChoiceFilter(
        choices=HealthBand.choices, method="band_filter", empty_label=_("every band"), label=_("Band")
    )
    officer = django_filters.CharFilter(method="officer_filter", label=_("Officer"))
    assignee = django_filters.CharFilter(method="assignee_filter", max_length=150, label=_("Assignee"))
    sla = django_filters.ChoiceFilter(
        choices=[("breached", _("past its SLA target"))], method="sla_filter", empty_label=_("any"), label=_("SLA")
    )
    asset = django_filters.CharFilter(method="asset_filter", max_length=64, label=_("Asset"))
    group = django_filters.CharFilter(
        field_name="account__client__group__code", lookup_expr="iexact", max_length=64, label=_("Group")
    )
    q = django_filters.CharFilter(method="search_filter", max_length=100, label=_("Account or client"))

    class Meta:
        model = Case
        fields: list[str] = []

    def band_filter(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        return cases.filter(account__risk__band=value)

    def officer_filter(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        made = Proposal.objects.filter(case_id=OuterRef("pk"), made_by__username=value)
        approved = Approval.objects.filter(proposal__case_id=OuterRef("pk"), approver__username=value)
        return cases.filter(Exists(made) | Exists(approved))

    def assignee_filter(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        user: Any = getattr(self.request, "user", None)
        return cases_by_assignee(cases, value, user.pk if user is not None else None)

    def sla_filter(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        return queue_sla(cases, timezone.now(), breached_only=True) if value == "breached" else cases

    def asset_filter(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        symbol = value.strip()
        held = Position.objects.filter(account_id=OuterRef("account_id")).exclude(quantity=0)
        return cases.filter(
            Exists(held.filter(Q(instrument__symbol__iexact=symbol) | Q(instrument__underlying__symbol__iexact=symbol)))
        )

    def search_filter(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        term = value.strip()
        return cases.filter(
            Q(account__code__icontains=term)
            | Q(account__client__code__icontains=term)
            | Q(account__client__name__icontains=term)
        )

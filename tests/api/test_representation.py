"""The serializers render from a plan made once per class (core.api.fields.FastRepresentation): the same output,
to the character, as REST framework's own rendering of the same declared fields."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import serializers

from accounts.api import AccountSerializer, PositionSerializer, SweepSerializer
from accounts.models import ApiToken, MarginAccount, MarginLoan, Position
from accounts.tokens.views import TokenSerializer
from core.api.fields import FastRepresentation
from restructuring.api import (
    CaseDetailSerializer,
    DocumentSerializer,
    LoanSerializer,
    OfferDetailSerializer,
    TopUpSerializer,
)
from restructuring.models import Case, CollateralTopUp, Document, Proposal
from tests.api.conftest import World


def _drf(serializer: Any, instance: Any) -> Any:
    """REST framework's rendering: Serializer.to_representation over the declared fields, recursively."""
    data = serializers.Serializer.to_representation(serializer, instance)
    for name, field in serializer.fields.items():
        planned = isinstance(field, FastRepresentation)
        if planned and data.get(name) is not None:
            data[name] = _drf(field, field.get_attribute(instance))
    return data


@pytest.mark.django_db
def test_the_planned_rendering_is_rest_frameworks(world: World) -> None:
    cases = [
        (AccountSerializer, MarginAccount.objects.select_related("risk").get(pk=world.a_account.pk)),
        (AccountSerializer, MarginAccount.objects.get(pk=world.b_account.pk)),  # never swept: risk null
        (PositionSerializer, Position.objects.select_related("instrument").filter(account=world.a_account).first()),
        (CaseDetailSerializer, Case.objects.get(pk=world.a_case.pk)),
        (OfferDetailSerializer, Proposal.objects.select_related("case__account", "agreement").get(pk=world.a_offer.pk)),
        (OfferDetailSerializer, Proposal.objects.select_related("case__account").get(pk=world.b_offer.pk)),
        (LoanSerializer, MarginLoan.objects.get(account=world.a_account)),
        (TopUpSerializer, CollateralTopUp.objects.get(pk=world.a_top_up.pk)),
        (DocumentSerializer, Document.objects.get(pk=world.a_document.pk)),
        (DocumentSerializer, Document.objects.get(pk=world.b_document.pk)),  # on no case
        (TokenSerializer, ApiToken.objects.filter(client=world.a).first()),
        (SweepSerializer, world.sweep),
    ]
    for serializer_class, instance in cases:
        serializer = serializer_class(context={"request": None})

        assert serializer.to_representation(instance) == _drf(serializer, instance), serializer_class.__name__

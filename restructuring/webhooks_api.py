"""The API of a client's webhook endpoints (/api/v1/webhooks/) and of the event catalogue (/api/v1/events/).

Every query starts from the caller's client, so another client's endpoint is simply not found (404). The changes
are restructuring/services/webhooks.py's, each POST once per Idempotency-Key. A secret is in a response twice
only: the endpoint's creation and a rotation; the idempotency record keeps those responses encrypted
(`idempotent(sensitive=True)`), so a replay shows the secret again and the database never holds it in clear.
Disabling is a POST, not a DELETE: the endpoint and its delivery log stay (and it can be enabled again).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ALL_EVENTS, WebhookDisabledReason, WebhookEndpoint, WebhookEndpointState
from accounts.tokens.permissions import IsTokenHolder
from accounts.tokens.views import ClientView
from core.api.fields import FastRepresentation, StrictSerializer, WholeNumber
from core.api.idempotency import idempotent
from core.api.views import ApiView
from restructuring.events import catalogue_json, webhook_event_names
from restructuring.models import WebhookDelivery
from restructuring.selectors.client import client_webhook_deliveries, client_webhook_endpoints
from restructuring.services.webhooks import (
    DEFAULT_OVERLAP_HOURS,
    MAX_OVERLAP_HOURS,
    IssuedEndpoint,
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_enable,
    webhook_endpoint_rotate,
)

_EVENT_CHOICES = [*webhook_event_names(), ALL_EVENTS]


class WebhookEndpointSerializer(FastRepresentation, serializers.ModelSerializer[WebhookEndpoint]):
    """A webhook endpoint of yours: where your events are posted, which types, and whether it is active. Never
    its secret (shown once, when it is made or rotated)."""

    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=_EVENT_CHOICES),
        help_text='The event types it receives (GET /api/v1/events/); ["*"]: all, those added later included.',
    )
    state = serializers.ChoiceField(choices=WebhookEndpointState.choices)
    disabled_reason = serializers.ChoiceField(
        choices=WebhookDisabledReason.choices,
        allow_blank=True,
        help_text="Why it is disabled: by you (client), or after its failed deliveries (failures); empty if active.",
    )
    consecutive_failures = serializers.IntegerField(
        help_text="Failed deliveries in a row; at the server's limit the endpoint is disabled and you are emailed."
    )
    previous_secret_valid_until = serializers.DateTimeField(
        source="previous_secret_expires_at",
        allow_null=True,
        help_text="After a rotation with an overlap: until when the previous secret signs too; null otherwise.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "state",
            "disabled_reason",
            "disabled_at",
            "consecutive_failures",
            "created_at",
            "updated_at",
            "secret_rotated_at",
            "previous_secret_valid_until",
        ]
        read_only_fields = fields


class WebhookEndpointIssuedSerializer(WebhookEndpointSerializer):
    """A webhook endpoint just made or rotated, with its secret: keep it now, it is never shown again."""

    secret = serializers.SerializerMethodField(
        help_text="The secret that signs the bodies (HMAC-SHA256, X-Workout-Signature). Shown this once."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, issued: IssuedEndpoint) -> str:
        return issued.secret


def _issued(issued: IssuedEndpoint, code: int) -> Response:
    body = WebhookEndpointSerializer().to_representation(issued.endpoint)
    body["secret"] = issued.secret
    return Response(body, status=code)


class WebhookEndpointCreateSerializer(StrictSerializer):
    """A webhook endpoint to make: its URL and the event types it receives."""

    url = serializers.CharField(
        max_length=2000,
        trim_whitespace=False,
        help_text="http(s), and public: an address inside the lender's network is refused (400 on `url`).",
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=_EVENT_CHOICES),
        allow_empty=False,
        max_length=len(_EVENT_CHOICES),
        help_text='Event types from GET /api/v1/events/, or ["*"] for all (those added later included).',
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class WebhookRotateSerializer(StrictSerializer):
    """How long the previous secret keeps signing next to the new one."""

    previous_valid_hours = WholeNumber(
        min_value=0,
        max_value=MAX_OVERLAP_HOURS,
        required=False,
        default=DEFAULT_OVERLAP_HOURS,
        help_text=f"Hours (0 to {MAX_OVERLAP_HOURS}, default {DEFAULT_OVERLAP_HOURS}) during which each body also "
        "carries the previous secret's signature (`sha256=<new>,sha256=<old>`); 0 ends the previous secret now.",
    )


class WebhookDeliverySerializer(FastRepresentation, serializers.ModelSerializer[WebhookDelivery]):
    """One attempt to deliver an event to your endpoint: when, how long it took, and what came back."""

    event_id = serializers.IntegerField(
        source="notification_id", help_text="The event's id: the body's `id` (the same on every attempt)."
    )
    event_type = serializers.CharField(help_text="The event's type.")
    status_code = serializers.IntegerField(allow_null=True, help_text="Your server's HTTP status; null: no answer.")
    error = serializers.CharField(help_text="What went wrong (the status and the start of the body, a timeout, ...).")

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event_id", "event_type", "attempted_at", "duration_ms", "status_code", "succeeded", "error"]
        read_only_fields = fields


class EventTypeSerializer(serializers.Serializer):
    """An event type of the catalogue: when it is sent and the JSON Schema of its payload (the body's `data`)."""

    type = serializers.CharField(help_text="Its name, the body's `type` and the X-Workout-Event header.")
    summary = serializers.CharField(help_text="When it is sent.")
    webhook = serializers.BooleanField(help_text="Whether webhooks carry it (else it is sent by email only).")
    audience = serializers.ChoiceField(choices=["client"], help_text="Who it is for.")
    payload_schema = serializers.DictField(help_text="The JSON Schema (2020-12) of its payload.")


class _OwnEndpointView(ClientView):
    def _endpoint(self, pk: int) -> WebhookEndpoint:
        return generics.get_object_or_404(client_webhook_endpoints(self.client_id), pk=pk)


@extend_schema(tags=["webhooks"])
class WebhookListView(ClientView, generics.ListAPIView[WebhookEndpoint]):
    """Your webhook endpoints, newest first. POST makes one (201) and answers its secret, this once: a bad or
    private URL or an unknown event type is 400 naming the field; more active endpoints than allowed, 409."""

    serializer_class = WebhookEndpointSerializer

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        return client_webhook_endpoints(self.client_id).order_by("-created_at", "-pk")

    @extend_schema(request=WebhookEndpointCreateSerializer, responses={201: WebhookEndpointIssuedSerializer})
    @idempotent(sensitive=True)
    def post(self, request: Request) -> Response:
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        issued = webhook_endpoint_create(
            client_id=self.client_id, url=data["url"], event_types=data["event_types"], description=data["description"]
        )
        return _issued(issued, status.HTTP_201_CREATED)


@extend_schema(tags=["webhooks"])
class WebhookDetailView(ClientView, generics.RetrieveAPIView[WebhookEndpoint]):
    """One of your webhook endpoints."""

    serializer_class = WebhookEndpointSerializer

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        return client_webhook_endpoints(self.client_id)


@extend_schema(tags=["webhooks"])
class WebhookRotateView(_OwnEndpointView):
    """A new secret for the endpoint, answered this once. The previous secret keeps signing next to it for
    `previous_valid_hours` (default 24; 0: not at all), so that your server can switch when it likes."""

    serializer_class = WebhookRotateSerializer

    @extend_schema(request=WebhookRotateSerializer, responses={200: WebhookEndpointIssuedSerializer})
    @idempotent(sensitive=True)
    def post(self, request: Request, pk: int) -> Response:
        serializer = WebhookRotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        hours = serializer.validated_data["previous_valid_hours"]
        issued = webhook_endpoint_rotate(endpoint_id=pk, client_id=self.client_id, previous_valid_hours=hours)
        return _issued(issued, status.HTTP_200_OK)


class _NoBody(StrictSerializer):
    """An empty body: the action takes no input."""


@extend_schema(tags=["webhooks"])
class WebhookDisableView(_OwnEndpointView):
    """Stop the endpoint's deliveries: it receives nothing (its pending deliveries are dropped) until enabled
    again. The endpoint and its delivery log are kept. Disabling a disabled endpoint changes nothing."""

    serializer_class = _NoBody

    @extend_schema(request=_NoBody, responses={200: WebhookEndpointSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        _NoBody(data=request.data).is_valid(raise_exception=True)
        endpoint = webhook_endpoint_disable(endpoint_id=pk, client_id=self.client_id)
        return Response(WebhookEndpointSerializer().to_representation(endpoint))


@extend_schema(tags=["webhooks"])
class WebhookEnableView(_OwnEndpointView):
    """Start a disabled endpoint's deliveries again (its failure count back to 0); events from now on are
    delivered. Enabling an active endpoint changes nothing."""

    serializer_class = _NoBody

    @extend_schema(request=_NoBody, responses={200: WebhookEndpointSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        _NoBody(data=request.data).is_valid(raise_exception=True)
        endpoint = webhook_endpoint_enable(endpoint_id=pk, client_id=self.client_id)
        return Response(WebhookEndpointSerializer().to_representation(endpoint))


@extend_schema(tags=["webhooks"])
class WebhookDeliveriesView(_OwnEndpointView, generics.ListAPIView[WebhookDelivery]):
    """The delivery log of one of your endpoints, newest first: every attempt, retries and redeliveries included."""

    serializer_class = WebhookDeliverySerializer

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        return client_webhook_deliveries(self._endpoint(self.kwargs["pk"])).order_by("-attempted_at", "-pk")


@extend_schema(tags=["webhooks"])
class EventListView(ApiView, generics.ListAPIView):  # a list of dicts, not a model's rows
    """The event catalogue: every type of event a client is told of, when, and the JSON Schema of its payload.
    Those with `webhook` true are what an endpoint subscribes to (docs: the body, its signature, the retries)."""

    permission_classes = [IsTokenHolder]
    serializer_class = EventTypeSerializer

    def get_queryset(self) -> Any:
        return catalogue_json()

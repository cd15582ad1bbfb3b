"""The OpenAPI document (drf-spectacular): the Idempotency-Key header of state-changing POSTs, and the errors of
every operation, added here once instead of on every view. (How to authenticate is described next to the
authentication: accounts/tokens/authentication.py.)"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes

from core.api.errors import ErrorSerializer
from core.api.fields import MoneyString
from core.api.idempotency import HEADER, MAX_KEY_LENGTH

_ERRORS = {
    "400": "Invalid input (`field` names it): a body field, an unknown query parameter (`unknown_parameter`), or "
    "the Idempotency-Key missing or malformed.",
    "401": "No token, or a token that is invalid (`token_invalid`), expired (`token_expired`) or revoked "
    "(`token_revoked`).",
    "403": "The token's holder may not use this endpoint (a client on a staff endpoint, or the reverse).",
    "404": "No such object, or not the caller's (another client's objects are never shown, nor confirmed).",
    "409": "The object is not in a state that allows this (`negotiation_conflict`, `transition_not_allowed`): "
    "someone else acted first, or the offer has expired; or the terms are not the ones you named "
    "(`terms_changed`: read the offer again), or the agreement is not the offer's (`agreement_mismatch`: download "
    "the offer's agreement again).",
    "413": "The request body is too large (`request_too_large`).",
    "415": "The body's content type is not accepted here.",
    "422": "The Idempotency-Key was already used with another request (`idempotency_key_reused`).",
    "429": "Too many requests for this token (`throttled`); the Retry-After header says when to try again.",
}


class DecimalStringField(OpenApiSerializerFieldExtension):
    """Decimal strings (core.api.fields.DecimalString, MoneyString) as their grammar is: ASCII digits, an optional
    point and decimals (the pattern drf-spectacular writes for a DecimalField allows "", "-" and "1.")."""

    target_class = "core.api.fields.DecimalString"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        field = self.target
        whole = field.max_whole_digits or 0
        places = field.decimal_places or 0
        negative = field.min_value is None or field.min_value < 0
        pattern = rf"^{'-?' if negative else ''}[0-9]{{1,{whole}}}" + (rf"(\.[0-9]{{1,{places}}})?$" if places else "$")
        schema: dict[str, Any] = {"type": "string", "format": "decimal", "pattern": pattern}
        if isinstance(field, MoneyString):
            schema["description"] = (
                "An amount in the account's currency, with its decimal places (2 for USD, 8 for BTC)."
            )
        return schema


class ApiAutoSchema(AutoSchema):
    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self._idempotent():
            parameters.append(
                OpenApiParameter(
                    HEADER,
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    required=True,
                    description=(
                        "A unique key per request (e.g. a UUID), 1 to "
                        f"{MAX_KEY_LENGTH} printable ASCII characters. Repeating a request with the same key and "
                        "body replays the first response (header `Idempotent-Replayed: true`) without acting twice; "
                        "the same key with another body is refused (422). Keys are per caller."
                    ),
                    pattern=rf"^[!-~]{{1,{MAX_KEY_LENGTH}}}$",
                )
            )
        return parameters

    def _idempotent(self) -> bool:
        handler = getattr(self.view, (self.method or "").lower(), None)
        return bool(getattr(handler, "idempotent", False))

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        codes = ["400", "401", "403", "429"]
        if self.method != "GET" or "{" in self.path or self._is_list_view():
            codes.append("404")  # a list: a page beyond the last
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["413", "415"]
        if self._idempotent():
            codes += ["409", "422"]
        for code in codes:
            if code not in responses:
                responses[code] = {
                    **self._get_response_for_code(ErrorSerializer, code, direction=direction),
                    "description": _ERRORS[code],
                }
        return dict(sorted(responses.items()))


def strict_objects(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Postprocessing hook: objects of the document have exactly the properties named (additionalProperties
    false), as the API refuses unknown input fields and its responses hold nothing more."""
    for schema in result.get("components", {}).get("schemas", {}).values():
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
    return result

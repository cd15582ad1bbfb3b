"""The API of the book: a client's accounts (with their latest risk figures) and positions; and the operations
endpoints (staff): book upload, price upload, sweeps. Thin: parse, call one service or query, render."""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import MarginAccount, Position, RiskState, Sweep
from accounts.services.book_import import ImportResult, book_import, prices_import
from accounts.services.sweep import sweep_start
from accounts.tokens.permissions import IsOperator
from accounts.tokens.views import ClientView
from core.api.errors import ApiError
from core.api.fields import FastRepresentation, MoneyString, StrictSerializer, WholeNumber
from core.api.idempotency import idempotent
from core.api.views import ApiView
from core.errors import WorkoutError
from core.models import OperationChannel
from core.operations import OperationRun, operation

# ------------------------------------------------------------------------------------------- accounts


class RiskSerializer(FastRepresentation, serializers.ModelSerializer[RiskState]):
    """The account's latest risk figures, in its base currency, as of `computed_at` (the last sweep)."""

    equity = MoneyString(currency="account.base_currency", read_only=True)
    market_value = MoneyString(currency="account.base_currency", read_only=True)
    collateral_value = MoneyString(currency="account.base_currency", read_only=True)
    initial_requirement = MoneyString(currency="account.base_currency", read_only=True)
    maintenance_requirement = MoneyString(currency="account.base_currency", read_only=True)
    shortfall_maintenance = MoneyString(currency="account.base_currency", read_only=True)
    shortfall_initial = MoneyString(currency="account.base_currency", read_only=True)

    class Meta:
        model = RiskState
        fields = [
            "computed_at",
            "band",
            "equity",
            "market_value",
            "collateral_value",
            "initial_requirement",
            "maintenance_requirement",
            "margin_ratio",
            "shortfall_maintenance",
            "shortfall_initial",
            "distance_to_liquidation",
        ]
        read_only_fields = fields


class AccountSerializer(FastRepresentation, serializers.ModelSerializer[MarginAccount]):
    """One of your margin accounts, with its latest risk figures."""

    cash = MoneyString(currency="base_currency", read_only=True, help_text="In the account's base currency.")
    risk = RiskSerializer(read_only=True, allow_null=True, help_text="null until the account is first swept")

    class Meta:
        model = MarginAccount
        fields = ["id", "code", "mode", "margin_model", "base_currency", "cash", "created_at", "risk"]
        read_only_fields = fields


class PositionSerializer(FastRepresentation, serializers.ModelSerializer[Position]):
    """A position of one of your accounts. Prices and quantities carry 8 decimal places."""

    isolated_margin = MoneyString(
        currency="account.base_currency",
        read_only=True,
        allow_null=True,
        help_text="Margin set aside for this position alone (isolated accounts); null otherwise.",
    )
    instrument = serializers.CharField(source="instrument.symbol", read_only=True)
    instrument_kind = serializers.CharField(source="instrument.kind", read_only=True)
    currency = serializers.CharField(source="instrument.currency", read_only=True)

    class Meta:
        model = Position
        fields = [
            "id",
            "instrument",
            "instrument_kind",
            "currency",
            "quantity",
            "entry_price",
            "isolated_margin",
            "updated_at",
        ]
        read_only_fields = fields


def client_accounts(client_id: int) -> QuerySet[MarginAccount]:
    return MarginAccount.objects.filter(client_id=client_id)


@extend_schema(tags=["accounts"])
class AccountListView(ClientView, generics.ListAPIView[MarginAccount]):
    """Your margin accounts, each with its latest risk figures."""

    serializer_class = AccountSerializer

    def get_queryset(self) -> QuerySet[MarginAccount]:
        return client_accounts(self.client_id).select_related("risk").order_by("pk")


@extend_schema(tags=["accounts"])
class AccountDetailView(ClientView, generics.RetrieveAPIView[MarginAccount]):
    """One of your margin accounts with its latest risk figures."""

    serializer_class = AccountSerializer

    def get_queryset(self) -> QuerySet[MarginAccount]:
        return client_accounts(self.client_id).select_related("risk")


@extend_schema(tags=["accounts"])
class PositionListView(ClientView, generics.ListAPIView[Position]):
    """The positions of one of your accounts (quantity signed: negative is short)."""

    serializer_class = PositionSerializer

    def get_queryset(self) -> QuerySet[Position]:
        account = generics.get_object_or_404(client_accounts(self.client_id), pk=self.kwargs["pk"])
        return Position.objects.filter(account=account).select_related("instrument", "account").order_by("pk")


# ----------------------------------------------------------------------------------------- operations


class UploadSerializer(StrictSerializer):
    """A file to import."""

    file = serializers.FileField(help_text="The file, as a multipart/form-data part named `file`.")


class EntityCountsSerializer(FastRepresentation, serializers.Serializer):
    """How many rows of one kind the import created, updated and deleted."""

    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    deleted = serializers.IntegerField()


class ImportResultSerializer(FastRepresentation, serializers.Serializer):
    """What an import did, per kind of row."""

    file = serializers.CharField(help_text="The uploaded file's name.")
    groups = EntityCountsSerializer()
    clients = EntityCountsSerializer()
    instruments = EntityCountsSerializer()
    accounts = EntityCountsSerializer()
    loans = EntityCountsSerializer()
    positions = EntityCountsSerializer()
    prices = EntityCountsSerializer()
    instruments_priced = serializers.IntegerField(help_text="Instruments that got a price (a prices upload).")


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class _UploadView(ApiView):
    """An import of a file (docs/import-formats.md): applied whole or not at all; a bad file is refused with every
    problem found (400, `import_file_invalid`, field `file`)."""

    permission_classes = [IsOperator]
    parser_classes = [MultiPartParser]
    max_body_setting = "DATA_UPLOAD_MAX_MEMORY_SIZE"
    serializer_class = UploadSerializer

    def _import(self, request: Request, service: Any, operation_name: str) -> Response:
        serializer = UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        # The name without a directory, nor a leading dot ("..", ".bashrc"): a plain file in our directory.
        name = _SAFE_NAME.sub("_", Path(upload.name or "").name).lstrip(".")[-100:] or "upload"
        with tempfile.TemporaryDirectory(prefix="workout-upload-") as directory:
            path = Path(directory) / name
            digest = hashlib.sha256()
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    digest.update(chunk)
                    out.write(chunk)
            run = OperationRun.start(
                name=operation_name,
                channel=OperationChannel.API,
                actor=_operator(request),
                arguments={"file": name, "bytes": upload.size, "file_sha256": digest.hexdigest()},
            )
            try:
                # The import and its audit event in one transaction: a refused file leaves neither.
                with operation(run):
                    result: ImportResult = service(path=path)
                    run.outcome = {
                        **{entity: vars(counts) for entity, counts in result.counts().items()},
                        "instruments_priced": len(result.priced_instrument_ids),
                    }
            except WorkoutError as error:  # the message names the file as uploaded, not our temporary path
                message = error.message.replace(f"{directory}/", "")
                raise ApiError(
                    message, code=error.code, status_code=status.HTTP_400_BAD_REQUEST, field="file"
                ) from None
        counts = {entity: vars(getattr(result, entity)) for entity in _ENTITIES}
        body = {"file": name, **counts, "instruments_priced": len(result.priced_instrument_ids)}
        return Response(ImportResultSerializer(body).data)


def _operator(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)  # IsOperator lets only a member of staff's token through
    return user


_ENTITIES = ("groups", "clients", "instruments", "accounts", "loans", "positions", "prices")


@extend_schema(tags=["operations"], request={"multipart/form-data": UploadSerializer}, responses=ImportResultSerializer)
class BookUploadView(_UploadView):
    """Staff (permission accounts.add_marginaccount): import a book (.json) or positions (.csv)."""

    operator_permissions = ("accounts.add_marginaccount", "accounts.change_marginaccount")

    @idempotent
    def post(self, request: Request) -> Response:
        return self._import(request, book_import, "book_import")


@extend_schema(tags=["operations"], request={"multipart/form-data": UploadSerializer}, responses=ImportResultSerializer)
class PriceUploadView(_UploadView):
    """Staff (permission accounts.add_price): import prices (.csv or .json), upserted on (instrument, time)."""

    operator_permissions = ("accounts.add_price",)

    @idempotent
    def post(self, request: Request) -> Response:
        return self._import(request, prices_import, "prices_import")


class SweepSerializer(FastRepresentation, serializers.ModelSerializer[Sweep]):
    """A sweep of the whole book: its status and, once done, how many accounts fell in each health band."""

    band_counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = Sweep
        fields = [
            "id",
            "status",
            "as_of",
            "started_at",
            "finished_at",
            "model_version",
            "accounts",
            "positions",
            "band_counts",
        ]
        read_only_fields = fields


class SweepStartSerializer(StrictSerializer):
    """A sweep to start now."""

    shards = WholeNumber(
        min_value=1, max_value=64, required=False, help_text="Account ranges, each a task (default: the setting)."
    )


@extend_schema(tags=["operations"])
class SweepStartView(ApiView):
    """Staff (permission accounts.add_sweep): start a sweep of the whole book now; its shards run as tasks.
    Answers 202 with the sweep, whose status GET /operations/sweeps/{id}/ follows."""

    permission_classes = [IsOperator]
    operator_permissions = ("accounts.add_sweep",)
    serializer_class = SweepStartSerializer

    @extend_schema(request=SweepStartSerializer, responses={202: SweepSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = SweepStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        shards = serializer.validated_data.get("shards", settings.WORKOUT_SWEEP_SHARDS)
        run = OperationRun.start(
            name="sweep_start", channel=OperationChannel.API, actor=_operator(request), arguments={"shards": shards}
        )
        with operation(run):  # the sweep, its event, and (on commit) its shard tasks
            sweep = sweep_start(shards=shards)
            run.outcome = {"sweep_id": sweep.pk, "status": sweep.status}
        return Response(SweepSerializer(sweep).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["operations"])
class SweepDetailView(ApiView, generics.RetrieveAPIView[Sweep]):
    """Staff (permission accounts.view_sweep): a sweep's status and results."""

    permission_classes = [IsOperator]
    operator_permissions = ("accounts.view_sweep",)
    serializer_class = SweepSerializer
    queryset = Sweep.objects.all()

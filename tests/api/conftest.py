"""The world of the API tests: client A with a real offer (made by the rules from a margin call, valued,
approved and sent with its agreement) and a document, client B with one of everything (for the foreign-object
checks), an operations user and a compliance officer, each with a token; and a test client that speaks with a
token."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import caches
from django.test import Client as HttpClient
from django.test import TestCase, override_settings
from django.utils import timezone

from accounts.models import ApiToken, Client, Instrument, MarginAccount, MarginLoan, Position, Sweep, WebhookEndpoint
from accounts.services.api_tokens import api_token_create
from restructuring.models import Case, CaseState, CollateralTopUp, Document, Proposal, ProposalSource, ProposalState
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.documents import document_upload_by_client
from restructuring.services.negotiation.offers import offer_send
from restructuring.services.negotiation.proposals import proposal_approve
from restructuring.services.negotiation.topups import topup_declare
from restructuring.services.webhooks import webhook_endpoint_create, webhook_endpoint_disable
from tests.documents import PDF, PNG
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import policy_in_force

FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)
OPERATOR_PERMISSIONS = ("add_marginaccount", "change_marginaccount", "add_price", "add_sweep", "view_sweep")


class Api:
    """A test client with a bearer token (or none): `api.get(path)`, `api.post(path, body, key=...)`."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.http = HttpClient()

    def _headers(self, key: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        return {**headers, **(extra or {})}

    def get(self, path: str, **extra: str) -> Any:
        return self.http.get(path, headers=self._headers(None, extra), secure=True)

    def delete(self, path: str) -> Any:
        return self.http.delete(path, headers=self._headers(None), secure=True)

    def post(self, path: str, body: Any = None, *, key: str | None = "new", **extra: str) -> Any:
        """POST JSON (with a fresh Idempotency-Key unless `key` is given; None sends none)."""
        if key == "new":
            key = str(uuid.uuid4())
        return self.http.post(
            path,
            body if body is not None else {},
            content_type="application/json",
            headers=self._headers(key, extra),
            secure=True,
        )

    def upload(
        self, path: str, name: str, content: bytes, *, key: str | None = "new", fields: dict[str, Any] | None = None
    ) -> Any:
        """POST multipart/form-data: the file as the part `file`, with the form's other `fields`."""
        from django.core.files.uploadedfile import SimpleUploadedFile

        if key == "new":
            key = str(uuid.uuid4())
        form = {**(fields or {}), "file": SimpleUploadedFile(name, content)}
        return self.http.post(path, form, headers=self._headers(key), secure=True)


@dataclass
class World:
    a: Client
    b: Client
    a_account: MarginAccount
    b_account: MarginAccount
    a_case: Case
    b_case: Case
    a_offer: Proposal
    b_offer: Proposal
    a_top_up: CollateralTopUp
    b_top_up: CollateralTopUp
    a_webhook: WebhookEndpoint  # active, subscribed to margin calls
    b_webhook: WebhookEndpoint
    a_webhook_disabled: WebhookEndpoint  # disabled by its client
    b_webhook_disabled: WebhookEndpoint
    a_document: Document  # client A's proof of funds, on its case
    b_document: Document
    sweep: Sweep
    tokens: dict[str, str]  # role -> the token
    prefixes: dict[str, str]  # role -> its token's prefix
    operator: User
    compliance: User

    def api(self, role: str) -> Api:
        return Api(self.tokens.get(role))


def staff_user(username: str, role: str) -> User:
    """A member of staff in a role, without a password (a hash costs a third of a second; the API takes tokens)."""
    user = User.objects.create_user(username)
    user.groups.add(Group.objects.get(name=role))
    return user


def offered_case(code: str = "CALL", instrument: Instrument | None = None) -> Proposal:
    """The rules' proposal for 10 BTC at 100 on a 750 loan, approved and offered for 24 hours."""
    policy_in_force()
    margin_account = account(code, instrument or btc(), band="margin_call")
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    proposal = Proposal.objects.get(case__account=margin_account)
    officer = User.objects.filter(username="alice").first() or staff_user("alice", "credit_officer")
    # The client has no cash: the model flags the proposal, and the officer overrides it (the API is what is tested).
    assert proposal_approve(proposal_id=proposal.pk, actor=officer, version=1, override_reason="test book").approved
    return offer_send(proposal_id=proposal.pk, actor=officer, version=1, hours=24)


def _foreign_world(instrument: Instrument) -> tuple[Client, MarginAccount, Case, Proposal]:
    """Client B: an account with a position and a loan, a case with an offer open (rows made directly)."""
    client = Client.objects.create(code="C-B", name="Client B")
    b_account = MarginAccount.objects.create(code="B-1", client=client, cash=Decimal("5"))
    Position.objects.create(account=b_account, instrument=instrument, quantity=Decimal(3), entry_price=Decimal(90))
    MarginLoan.objects.create(account=b_account, principal=Decimal("400"), rate_annual=Decimal("0.08"))
    now = timezone.now()
    case = Case.objects.create(account=b_account, state=CaseState.OFFERED, opened_at=now)
    offer = Proposal.objects.create(
        case=case,
        source=ProposalSource.RULES,
        source_key="b",
        state=ProposalState.OFFERED,
        name="b",
        terms={"term_months": 12},
        offered_at=now,
        expires_at=now + timedelta(hours=24),
        counter_bounds={"max_term_months": 24},
        created_at=now,
    )
    return client, b_account, case, offer


@pytest.fixture(autouse=True)
def _fresh_throttle_counts() -> Iterator[None]:
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def world(db: None) -> World:
    return build_world()


@pytest.fixture
def committed_world(transactional_db: None) -> World:
    """The world committed, for tests with threads (each its own connection)."""
    return build_world()


def build_world() -> World:
    with FAST:
        a_offer = offered_case()
        a_case = a_offer.case
        a_account = MarginAccount.objects.get(pk=a_case.account_id)
        b, b_account, b_case, b_offer = _foreign_world(Instrument.objects.get(symbol="BTC"))
        a_top_up = topup_declare(account_id=a_account.pk, client_id=a_account.client_id, amount=Decimal("50"))
        b_top_up = topup_declare(account_id=b_account.pk, client_id=b.pk, amount=Decimal("60"))
        webhooks = {
            (client_id, active): webhook_endpoint_create(
                client_id=client_id,
                url=f"https://hooks.client{client_id}.example/{'on' if active else 'off'}",
                event_types=["margin_call"],
            ).endpoint
            for client_id in (a_account.client_id, b.pk)
            for active in (True, False)
        }
        for (client_id, active), endpoint in webhooks.items():
            if not active:
                webhooks[client_id, active] = webhook_endpoint_disable(endpoint_id=endpoint.pk, client_id=client_id)
        a_document = document_upload_by_client(
            client_id=a_account.client_id,
            kind="proof_of_funds",
            file=io.BytesIO(PDF),
            name="funds.pdf",
            case_id=a_case.pk,
        )
        b_document = document_upload_by_client(
            client_id=b.pk, kind="identification", file=io.BytesIO(PNG), name="id.png"
        )
        operator = staff_user("olivia", "credit_officer")
        operator.user_permissions.add(*Permission.objects.filter(codename__in=OPERATOR_PERMISSIONS))
        compliance = staff_user("carol", "compliance")
        issued = {
            "client_a": api_token_create(client_id=a_account.client_id),
            "client_b": api_token_create(client_id=b.pk),
            "operator": api_token_create(user_id=operator.pk),
            "compliance": api_token_create(user_id=compliance.pk),
            "expired": api_token_create(client_id=a_account.client_id),
            "revoked": api_token_create(client_id=a_account.client_id),
        }
        ApiToken.objects.filter(pk=issued["expired"].token.pk).update(
            created_at=timezone.now() - timedelta(days=2), expires_at=timezone.now() - timedelta(seconds=1)
        )
        ApiToken.objects.filter(pk=issued["revoked"].token.pk).update(revoked_at=timezone.now())
        return World(
            a=Client.objects.get(pk=a_account.client_id),
            b=b,
            a_account=a_account,
            b_account=b_account,
            a_case=a_case,
            b_case=b_case,
            a_offer=a_offer,
            b_offer=b_offer,
            a_top_up=a_top_up,
            b_top_up=b_top_up,
            a_webhook=webhooks[a_account.client_id, True],
            b_webhook=webhooks[b.pk, True],
            a_webhook_disabled=webhooks[a_account.client_id, False],
            b_webhook_disabled=webhooks[b.pk, False],
            a_document=a_document,
            b_document=b_document,
            sweep=Sweep.objects.latest("pk"),
            tokens={role: token.secret for role, token in issued.items()},
            prefixes={role: token.token.prefix for role, token in issued.items()},
            operator=operator,
            compliance=compliance,
        )

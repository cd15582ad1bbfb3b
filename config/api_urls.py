"""The client API, version 1 (/api/v1/). Every route here is in the authorisation matrix of
tests/api/test_authorisation_matrix.py (a route missing from it fails that test)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path

from accounts import api as accounts_api
from accounts.tokens import views as tokens_api
from core.api import views as core_api
from restructuring import api as restructuring_api
from restructuring import webhooks_api

urlpatterns: list[URLPattern | URLResolver] = [
    path("accounts/", accounts_api.AccountListView.as_view(), name="api-accounts"),
    path("accounts/<int:pk>/", accounts_api.AccountDetailView.as_view(), name="api-account"),
    path("accounts/<int:pk>/positions/", accounts_api.PositionListView.as_view(), name="api-account-positions"),
    path("accounts/<int:pk>/loan/", restructuring_api.LoanView.as_view(), name="api-account-loan"),
    path("cases/", restructuring_api.CaseListView.as_view(), name="api-cases"),
    path("cases/<int:pk>/", restructuring_api.CaseDetailView.as_view(), name="api-case"),
    path("cases/<int:pk>/promises/", restructuring_api.CasePromisesView.as_view(), name="api-case-promises"),
    path("cases/<int:pk>/messages/", restructuring_api.CaseMessagesView.as_view(), name="api-case-messages"),
    path("offers/", restructuring_api.OfferListView.as_view(), name="api-offers"),
    path("offers/<int:pk>/", restructuring_api.OfferDetailView.as_view(), name="api-offer"),
    path("offers/<int:pk>/accept/", restructuring_api.OfferAcceptView.as_view(), name="api-offer-accept"),
    path("offers/<int:pk>/decline/", restructuring_api.OfferDeclineView.as_view(), name="api-offer-decline"),
    path("offers/<int:pk>/counter/", restructuring_api.OfferCounterView.as_view(), name="api-offer-counter"),
    path("offers/<int:pk>/agreement/", restructuring_api.OfferAgreementView.as_view(), name="api-offer-agreement"),
    path("documents/", restructuring_api.DocumentListView.as_view(), name="api-documents"),
    path("documents/<int:pk>/", restructuring_api.DocumentDetailView.as_view(), name="api-document"),
    path("documents/<int:pk>/content/", restructuring_api.DocumentContentView.as_view(), name="api-document-content"),
    path("top-ups/", restructuring_api.TopUpListView.as_view(), name="api-top-ups"),
    path("top-ups/<int:pk>/", restructuring_api.TopUpDetailView.as_view(), name="api-top-up"),
    path("webhooks/", webhooks_api.WebhookListView.as_view(), name="api-webhooks"),
    path("webhooks/<int:pk>/", webhooks_api.WebhookDetailView.as_view(), name="api-webhook"),
    path("webhooks/<int:pk>/rotate/", webhooks_api.WebhookRotateView.as_view(), name="api-webhook-rotate"),
    path("webhooks/<int:pk>/disable/", webhooks_api.WebhookDisableView.as_view(), name="api-webhook-disable"),
    path("webhooks/<int:pk>/enable/", webhooks_api.WebhookEnableView.as_view(), name="api-webhook-enable"),
    path("webhooks/<int:pk>/deliveries/", webhooks_api.WebhookDeliveriesView.as_view(), name="api-webhook-deliveries"),
    path("events/", webhooks_api.EventListView.as_view(), name="api-events"),
    path("tokens/", tokens_api.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<str:prefix>/", tokens_api.TokenDetailView.as_view(), name="api-token"),
    path("operations/book/", accounts_api.BookUploadView.as_view(), name="api-operations-book"),
    path("operations/prices/", accounts_api.PriceUploadView.as_view(), name="api-operations-prices"),
    path("operations/sweeps/", accounts_api.SweepStartView.as_view(), name="api-operations-sweeps"),
    path("operations/sweeps/<int:pk>/", accounts_api.SweepDetailView.as_view(), name="api-operations-sweep"),
    # Anything else under /api/v1/: the API's own 404 (JSON, one error shape), not the site's HTML page.
    re_path(r"^.*$", core_api.NotFoundView.as_view(), name="api-not-found"),
]

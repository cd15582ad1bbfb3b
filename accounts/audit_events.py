"""The audit actions accounts writes (core/audit_catalogue.py): API tokens (accounts/services/api_tokens.py). Their
events keep the object type "core.apitoken" they had before tokens moved here (ApiToken.audit_object_type)."""

from __future__ import annotations

from accounts.models import ApiToken
from core.audit_catalogue import COMPLIANCE_ONLY, declare

API_TOKEN_CREATE = declare("api_token.create", ApiToken, audience=COMPLIANCE_ONLY, summary="an API token issued")
API_TOKEN_REVOKE = declare("api_token.revoke", ApiToken, audience=COMPLIANCE_ONLY, summary="an API token revoked")

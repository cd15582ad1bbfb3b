"""What every endpoint of the client API (/api/v1/) shares. The rules, each in one module:

- authentication: bearer tokens `wo_<prefix>_<secret>`, stored as SHA-256 only, expiring, revocable. Tokens
  belong to clients (and to members of staff, for the operations endpoints), so they are accounts' own:
  accounts/tokens/ (authentication, the policies by caller, the throttle per token, the token endpoints) and
  accounts/services/api_tokens.py (`manage.py api_token`). Here: the principal a client's token stands for.
- permissions: deny by default; a view names its policy (the client's own objects, or operations staff).
- errors: one JSON shape, `{"error": {"code", "message", "field"}}`, domain errors mapped to statuses once.
- idempotency: every state-changing POST takes an `Idempotency-Key`; one effect per key, the first response
  replayed.
- bounded pages and request bodies, amounts as decimal strings.
- schema: drf-spectacular, with the errors and headers of every operation.
"""

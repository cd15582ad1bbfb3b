"""The API's credentials, which belong to clients (and to members of staff for the operations endpoints): bearer
tokens (the model is accounts.models.ApiToken, made and revoked by accounts/services/api_tokens.py and
`manage.py api_token`), their authentication, the policies by caller, the throttle per token, and the caller's
token endpoints. Here rather than in core/api/ because core imports nothing above it (docs/architecture.md)."""

"""Webhook endpoints' secrets under the current key: the middle step of a key rotation.

Rotation (README "Configuration", WORKOUT_WEBHOOK_SECRET_KEYS): put a new key first and deploy, so new secrets
are encrypted under it while every key still decrypts; re-encrypt the stored ones (`webhook_secrets_reencrypt`,
this service: every endpoint's secret, and its previous one while a rotation's overlap keeps it); drop the old key
once none is left under it. Saving an endpoint does the same for its own secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.models import WebhookEndpoint
from core.encryption import EncryptedSecret, SecretDecryptionError

_FIELDS = ("secret", "previous_secret")


@dataclass(frozen=True)
class ReencryptResult:
    reencrypted: int
    already_current: int
    unreadable: tuple[str, ...]  # codes of the clients with a secret no configured key decrypts (left as stored)


def webhook_secrets_reencrypt(*, batch_size: int = 500) -> ReencryptResult:
    """Encrypt every stored webhook secret under the first key, a batch of endpoints per transaction. Rows are
    locked while they are rewritten, so a secret changed meanwhile (a rotation) is never overwritten with its old
    value. Safe to run again: a secret already under the first key is left alone."""
    reencrypted, current, unreadable = 0, 0, []
    ids = list(WebhookEndpoint.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), batch_size):
        with transaction.atomic():
            endpoints = list(
                WebhookEndpoint.objects.select_for_update(of=("self",))
                .filter(pk__in=ids[start : start + batch_size])
                .select_related("client")
                .only("pk", "client__code", *_FIELDS)
                .order_by("pk")
            )
            changed = []
            for endpoint in endpoints:
                renewed_any = False
                for name in _FIELDS:
                    stored = getattr(endpoint, name)
                    if not stored:
                        continue
                    assert isinstance(stored, EncryptedSecret)  # a read gives a token, never the clear value
                    try:
                        renewed = stored.reencrypted()
                    except SecretDecryptionError:
                        if endpoint.client.code not in unreadable:
                            unreadable.append(endpoint.client.code)
                        continue
                    if renewed == stored:
                        current += 1
                        continue
                    setattr(endpoint, name, renewed)
                    reencrypted += 1
                    renewed_any = True
                if renewed_any:
                    changed.append(endpoint)
            WebhookEndpoint.objects.bulk_update(changed, list(_FIELDS))
    return ReencryptResult(reencrypted=reencrypted, already_current=current, unreadable=tuple(unreadable))

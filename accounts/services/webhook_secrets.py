"""Clients' webhook secrets under the current key: the middle step of a key rotation.

Rotation (README "Configuration", WORKOUT_WEBHOOK_SECRET_KEYS): put a new key first and deploy, so new secrets
are encrypted under it while every key still decrypts; re-encrypt the stored ones (`webhook_secrets_reencrypt`,
this service); drop the old key once none is left under it. Saving a client does the same for its own secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.models import Client
from core.encryption import EncryptedSecret, SecretDecryptionError


@dataclass(frozen=True)
class ReencryptResult:
    reencrypted: int
    already_current: int
    unreadable: tuple[str, ...]  # codes of the clients whose secret no configured key decrypts (left as stored)


def webhook_secrets_reencrypt(*, batch_size: int = 500) -> ReencryptResult:
    """Encrypt every stored webhook secret under the first key, a batch of clients per transaction. Rows are
    locked while they are rewritten, so a secret changed meanwhile is never overwritten with its old value.
    Safe to run again: a secret already under the first key is left alone."""
    reencrypted, current, unreadable = 0, 0, []
    ids = list(Client.objects.exclude(webhook_secret="").order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), batch_size):
        with transaction.atomic():
            clients = list(
                Client.objects.select_for_update()
                .filter(pk__in=ids[start : start + batch_size])
                .exclude(webhook_secret="")
                .only("pk", "code", "webhook_secret")
                .order_by("pk")
            )
            changed = []
            for client in clients:
                stored = client.webhook_secret
                assert isinstance(stored, EncryptedSecret)  # a read gives a token, never the clear value
                try:
                    renewed = stored.reencrypted()
                except SecretDecryptionError:
                    unreadable.append(client.code)
                    continue
                if renewed == stored:
                    current += 1
                    continue
                client.webhook_secret = renewed
                changed.append(client)
            Client.objects.bulk_update(changed, ["webhook_secret"])
            reencrypted += len(changed)
    return ReencryptResult(reencrypted=reencrypted, already_current=current, unreadable=tuple(unreadable))

"""Secrets kept encrypted at rest: the signing keys of clients' webhook endpoints
(`accounts.models.WebhookEndpoint.secret`).

Fernet, from the `cryptography` package: AES-128-CBC with an HMAC-SHA256 over the whole token, so a token
read with the wrong key, or altered, is refused (`InvalidToken`) instead of decrypting to something else. A
signature is therefore never computed with a wrong secret without anyone knowing.

The keys are `settings.WORKOUT_WEBHOOK_SECRET_KEYS`, Fernet keys (32 url-safe base64-encoded bytes), newest
first: the first encrypts, every one decrypts (`MultiFernet`). To rotate, put a new key first, re-encrypt the
stored values under it (`manage.py webhook_secrets_reencrypt`, or save the rows), then drop the old key.
Unset (the embedded demo, development, tests), one key is derived from SECRET_KEY (and its fallbacks decrypt);
`check --deploy` says to set real ones (core/checks.py).

Stored values are Fernet tokens, which all start with "gAAAAA" (the version byte and the high bytes of the
timestamp, until 2106): the database holds that as a check constraint, so a clear value written around the ORM
is refused. An empty string means no secret and is stored as it is.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KEYS_SETTING = "WORKOUT_WEBHOOK_SECRET_KEYS"
TOKEN_PREFIX = "gAAAAA"  # noqa: S105 (not a secret: how every Fernet token starts)
_DERIVATION_INFO = b"workout: webhook secrets at rest"
_TOKEN_OVERHEAD = 1 + 8 + 16 + 32  # version, timestamp, IV, HMAC around the AES blocks


class SecretDecryptionError(RuntimeError):
    """A stored secret that no configured key decrypts: encrypted under a key since removed from
    WORKOUT_WEBHOOK_SECRET_KEYS, or altered. The message never holds the token nor a key."""


@dataclass(frozen=True, slots=True, repr=False)
class EncryptedSecret:
    """A secret as the database holds it: its Fernet token. Reading a model gives this, never the clear value,
    so a template, a form or a log line that shows the field shows a mask; `reveal()` decrypts, and only the
    code that signs with the secret calls it."""

    token: str

    def reveal(self) -> str:
        return secret_decrypt(self.token)

    def reencrypted(self) -> EncryptedSecret:
        """The same secret under the first key (itself when it already is)."""
        return EncryptedSecret(secret_reencrypt(self.token))

    def __str__(self) -> str:
        return "********"

    def __repr__(self) -> str:
        return "EncryptedSecret(********)"


def key_derived_from(secret_key: str) -> str:
    """A Fernet key derived from Django's SECRET_KEY (HKDF-SHA256): the default when no keys are configured."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_INFO).derive(
        secret_key.encode("utf-8")
    )
    return base64.urlsafe_b64encode(derived).decode("ascii")


def configured_keys() -> tuple[str, ...]:
    """The keys in use, first the one that encrypts."""
    keys = tuple(getattr(settings, KEYS_SETTING, ()) or ())
    if keys:
        return keys
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", ())
    return tuple(key_derived_from(secret_key) for secret_key in (settings.SECRET_KEY, *fallbacks))


def key_problems(keys: Sequence[str]) -> list[str]:
    """What is wrong with each key that is not a Fernet key (by position: a key is never repeated back)."""
    problems = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(f"key {position} of {len(keys)} is not a Fernet key (32 url-safe base64-encoded bytes)")
    return problems


@functools.lru_cache(maxsize=8)
def _fernets(keys: tuple[str, ...]) -> tuple[Fernet, MultiFernet]:
    problems = key_problems(keys)
    if problems:
        raise ImproperlyConfigured(f"{KEYS_SETTING}: {'; '.join(problems)}")
    fernets = [Fernet(key) for key in keys]
    return fernets[0], MultiFernet(fernets)


def secret_encrypt(clear: str) -> str:
    """The token of a clear secret, under the first key."""
    primary, _ = _fernets(configured_keys())
    return primary.encrypt(clear.encode("utf-8")).decode("ascii")


def secret_decrypt(token: str) -> str:
    _, every_key = _fernets(configured_keys())
    try:
        return every_key.decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise _undecryptable() from None


def secret_reencrypt(token: str) -> str:
    """The token under the first key: unchanged when it already is, else decrypted with any key and encrypted
    again (Fernet keeps the original timestamp)."""
    primary, every_key = _fernets(configured_keys())
    try:
        raw = token.encode("ascii")
    except UnicodeError:
        raise _undecryptable() from None
    try:
        primary.decrypt(raw)
    except InvalidToken:  # not the first key's: decrypted with whichever key reads it, encrypted with the first
        try:
            return every_key.rotate(raw).decode("ascii")
        except InvalidToken:
            raise _undecryptable() from None
    return token


def _undecryptable() -> SecretDecryptionError:
    return SecretDecryptionError(
        f"no key of {KEYS_SETTING} decrypts it (encrypted under a key no longer configured, or altered)"
    )


def is_token(value: str) -> bool:
    """Whether `value` is a Fernet token, under any key: the version byte 0x80, a timestamp, a 16-byte IV, whole
    AES blocks and a 32-byte HMAC, url-safe base64. A token under a key that is not configured here (a dump from
    another environment, a key removed) is still a token: taken for a clear secret it would be encrypted again
    and signatures made with its text, silently wrong; kept as a token, signing fails naming the client."""
    if not value.startswith(TOKEN_PREFIX):
        return False
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (ValueError, UnicodeError):
        return False
    body = len(raw) - _TOKEN_OVERHEAD
    return raw[:1] == b"\x80" and body >= 16 and body % 16 == 0

"""Model fields every app may use."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.expressions import Combinable

from core.encryption import EncryptedSecret, SecretDecryptionError, is_token, secret_encrypt

logger = logging.getLogger(__name__)


class WriteOnlySecretFormField(forms.CharField):
    """A form field that takes a new secret and never shows the one stored (not even its token): blank keeps it."""

    widget = forms.PasswordInput

    def prepare_value(self, value: Any) -> str:
        return ""

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data)


class EncryptedSecretField(models.Field):
    """A secret encrypted at rest with the keys of WORKOUT_WEBHOOK_SECRET_KEYS (core/encryption.py).

    What the model holds:
    - after a read, an `EncryptedSecret` (the token), so showing the field shows a mask and only the code that
      needs the clear value decrypts it (`.reveal()`);
    - after an assignment, the clear `str` given; it is encrypted under the first key on its way to the database,
      by every write path (`save`, `QuerySet.update`, `bulk_create`, `bulk_update`), since all of them prepare
      the value through `get_prep_value`.

    The empty string means no secret and is stored as it is (so `previous_secret=""` lookups and constraints keep
    their meaning). A string that is already a token of the configured keys is kept as that token, not encrypted
    twice (`loaddata` of a dump, a token copied back); a clear secret cannot be one. Saving a model re-encrypts
    its loaded token under the first key when an older key made it: key rotation by re-saving. `clear_max_length`
    bounds the clear secret (forms, `full_clean`); the column is text, a token being about 4/3 of it plus 76.
    """

    _pyi_private_set_type: str | EncryptedSecret | Combinable
    _pyi_private_get_type: str | EncryptedSecret

    description = "A secret, encrypted at rest"

    def __init__(self, *args: Any, clear_max_length: int = 200, **kwargs: Any) -> None:
        self.clear_max_length = clear_max_length
        super().__init__(*args, **kwargs)

    def get_internal_type(self) -> str:
        return "TextField"

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["clear_max_length"] = self.clear_max_length
        return name, path, args, kwargs

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | EncryptedSecret | None:
        if not value:
            return value
        return EncryptedSecret(value)

    def to_python(self, value: Any) -> str | EncryptedSecret | None:
        if value is None or isinstance(value, EncryptedSecret):
            return value
        value = str(value)
        return EncryptedSecret(value) if is_token(value) else value

    def get_prep_value(self, value: Any) -> str | None:
        value = self.to_python(super().get_prep_value(value))  # lazy strings resolved
        if value is None or value == "":
            return value
        if isinstance(value, EncryptedSecret):
            return value.token
        return secret_encrypt(value)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = super().pre_save(model_instance, add)
        if isinstance(value, str):
            value = self.to_python(value)  # a token given as text is kept as that token
        if isinstance(value, str) and value:
            # Encrypted here, and the instance holds the token from now on: a clear secret left on a saved
            # instance could reach a template, a serialiser or a log line.
            encrypted = EncryptedSecret(secret_encrypt(value))
            setattr(model_instance, self.attname, encrypted)
            return encrypted
        if not isinstance(value, EncryptedSecret):
            return value
        try:
            current = value.reencrypted()
        except SecretDecryptionError as error:
            # Kept as it is: the key that reads it may only be missing from this process's settings, and the
            # send that needs it reports it (naming the client) each time it tries.
            logger.warning("%s %s of %s kept as stored: %s", self.model.__name__, self.name, model_instance, error)
            return value
        setattr(model_instance, self.attname, current)
        return current

    def validate(self, value: Any, model_instance: models.Model | None) -> None:
        super().validate(value, model_instance)
        if isinstance(value, str) and len(value) > self.clear_max_length:
            raise ValidationError(
                "The secret has %(length)d characters, more than %(limit)d.",
                code="max_length",
                params={"length": len(value), "limit": self.clear_max_length},
            )

    def value_to_string(self, obj: models.Model) -> str:
        # Serialisers (dumpdata) get the token, never the clear value.
        return self.get_prep_value(self.value_from_object(obj)) or ""

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(
            **{
                "form_class": WriteOnlySecretFormField,
                "widget": forms.PasswordInput(render_value=False),
                "max_length": self.clear_max_length,
                "strip": False,
                **kwargs,
            }
        )

    def save_form_data(self, instance: models.Model, data: Any) -> None:
        # A blank form field keeps the stored secret: the form never shows it, so blank means "not changed".
        if data not in (None, ""):
            super().save_form_data(instance, data)

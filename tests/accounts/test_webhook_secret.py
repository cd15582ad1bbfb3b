"""A client's webhook secret is encrypted at rest (core/encryption.py, core/fields.py): on every write path, under
the first configured key, readable with any of them; the clear value never leaves the process that signs with
it. The migration that brought this in encrypts the clear values there were, and its reverse decrypts them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client as HttpClient
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Client
from accounts.services.webhook_secrets import webhook_secrets_reencrypt
from core import checks
from core.encryption import EncryptedSecret, SecretDecryptionError, key_derived_from, secret_decrypt
from tests.factories.accounts import ClientFactory
from tests.web.helpers import PASSWORD, signed_in

SECRET = "whsec-0123456789abcdef-\u00e9t\u00e9"  # not ASCII: the key is the secret's UTF-8 bytes
URL = "https://hooks.client.example/workout"
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
OTHER_KEY = Fernet.generate_key().decode()


def _stored(client_id: int) -> str:
    """What the column holds, read around the ORM."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM accounts_client WHERE id = %s", [client_id])
        (value,) = cursor.fetchone()
    return str(value)


def _readable_with(key: str, token: str) -> bool:
    try:
        Fernet(key).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


# ----------------------------------------------------------------------------------------- at rest


@pytest.mark.django_db
def test_the_column_holds_a_token_that_decrypts_to_the_secret() -> None:
    # when
    client = ClientFactory.create(webhook_url=URL, webhook_secret=SECRET)

    # then the column is not the secret, and decrypts to it
    stored = _stored(client.pk)
    assert stored != SECRET
    assert SECRET not in stored
    assert stored.startswith("gAAAAA")
    assert secret_decrypt(stored) == SECRET
    # a read gives the token, masked when shown; only `reveal()` gives the clear value
    read = Client.objects.get(pk=client.pk).webhook_secret
    assert read == EncryptedSecret(stored)
    assert isinstance(read, EncryptedSecret)
    assert (str(read), repr(read)) == ("********", "EncryptedSecret(********)")
    assert read.reveal() == SECRET
    assert Client.objects.values_list("webhook_secret", flat=True).get(pk=client.pk) == read


def _by_save(code: str) -> int:
    client = Client(code=code, name=code, webhook_url=URL)
    client.webhook_secret = SECRET
    client.save()
    return client.pk


def _by_create(code: str) -> int:
    return Client.objects.create(code=code, name=code, webhook_url=URL, webhook_secret=SECRET).pk


def _by_update(code: str) -> int:
    client = Client.objects.create(code=code, name=code)
    Client.objects.filter(pk=client.pk).update(webhook_url=URL, webhook_secret=SECRET)
    return client.pk


def _by_bulk_create(code: str) -> int:
    Client.objects.bulk_create([Client(code=code, name=code, webhook_url=URL, webhook_secret=SECRET)])
    return Client.objects.get(code=code).pk


def _by_bulk_update(code: str) -> int:
    client = Client.objects.create(code=code, name=code)
    client.webhook_url, client.webhook_secret = URL, SECRET
    Client.objects.bulk_update([client], ["webhook_url", "webhook_secret"])
    return client.pk


def _by_update_or_create(code: str) -> int:
    client, _ = Client.objects.update_or_create(code=code, defaults={"webhook_url": URL, "webhook_secret": SECRET})
    return client.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    "write", [_by_save, _by_create, _by_update, _by_bulk_create, _by_bulk_update, _by_update_or_create]
)
def test_every_write_path_encrypts(write: Callable[[str], int]) -> None:
    client_id = write("W-1")

    stored = _stored(client_id)
    assert stored != SECRET
    assert secret_decrypt(stored) == SECRET


@pytest.mark.django_db
def test_no_secret_stays_empty_and_the_constraints_hold_in_the_database() -> None:
    # given a client without a webhook
    client = ClientFactory.create()
    assert _stored(client.pk) == ""
    assert Client.objects.get(pk=client.pk).webhook_secret == ""

    # a webhook URL without a secret is refused
    with pytest.raises(IntegrityError, match="client_webhook_has_secret"), transaction.atomic():
        Client.objects.filter(pk=client.pk).update(webhook_url=URL)

    # so is a clear secret written around the ORM
    with (
        pytest.raises(IntegrityError, match="client_webhook_secret_encrypted"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE accounts_client SET webhook_secret = %s WHERE id = %s", [SECRET, client.pk])
    assert _stored(client.pk) == ""


@pytest.mark.django_db
def test_a_token_given_back_is_not_encrypted_twice() -> None:
    # given a token of the configured keys (a dump loaded again, a value copied from another row)
    first = ClientFactory.create(webhook_url=URL, webhook_secret=SECRET)
    token = _stored(first.pk)

    # when it is written as if it were a secret
    second = ClientFactory.create(webhook_url=URL, webhook_secret=token)

    # then it is kept as that token: the secret is still the clear one, not the token
    assert _stored(second.pk) == token
    assert secret_decrypt(_stored(second.pk)) == SECRET


@pytest.mark.django_db
def test_a_token_under_a_key_not_configured_is_kept_and_refused_when_signing() -> None:
    # given a token made under a key this environment does not have (a dump from elsewhere, a key removed)
    foreign = Fernet(OTHER_KEY).encrypt(SECRET.encode()).decode()

    # when it is written as the secret
    client = ClientFactory.create(webhook_url=URL, webhook_secret=foreign)

    # then it is stored as that token, not encrypted again (signatures made with its text would be silently
    # wrong): reading it says no key decrypts it
    assert _stored(client.pk) == foreign
    secret = Client.objects.get(pk=client.pk).webhook_secret
    assert isinstance(secret, EncryptedSecret)
    with pytest.raises(SecretDecryptionError):
        secret.reveal()


@pytest.mark.django_db
def test_a_saved_instance_holds_the_token_not_the_clear_secret() -> None:
    client = ClientFactory.create()
    client.webhook_url, client.webhook_secret = URL, SECRET

    client.save()

    assert isinstance(client.webhook_secret, EncryptedSecret)
    assert client.webhook_secret.token == _stored(client.pk)
    assert SECRET not in repr(vars(client))


@pytest.mark.django_db
def test_full_clean_refuses_a_secret_longer_than_200_characters_and_a_url_without_one() -> None:
    too_long = Client(code="LONG", name="long", webhook_url=URL, webhook_secret="x" * 201)
    with pytest.raises(ValidationError) as long_error:
        too_long.full_clean()
    assert long_error.value.message_dict == {"webhook_secret": ["The secret has 201 characters, more than 200."]}

    without = Client(code="NONE", name="none", webhook_url=URL)
    with pytest.raises(ValidationError) as missing:
        without.full_clean()
    assert missing.value.messages == ["A webhook URL needs a webhook secret to sign with."]

    Client(code="OK", name="ok", webhook_url=URL, webhook_secret="x" * 200).full_clean()


# ----------------------------------------------------------------------------------------- keys and rotation


@pytest.mark.django_db
def test_with_no_keys_set_a_key_derived_from_secret_key_encrypts(settings: Any) -> None:
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = []
    client = ClientFactory.create(webhook_url=URL, webhook_secret=SECRET)

    stored = _stored(client.pk)
    assert Fernet(key_derived_from(settings.SECRET_KEY)).decrypt(stored.encode()).decode() == SECRET
    # and the old SECRET_KEY still reads it after SECRET_KEY changes, while kept in the fallbacks
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert secret_decrypt(stored) == SECRET


@pytest.mark.django_db
def test_rotation_old_values_still_decrypt_and_resaving_encrypts_under_the_new_key(settings: Any) -> None:
    # given a secret written under the old key
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OLD_KEY]
    client = ClientFactory.create(webhook_url=URL, webhook_secret=SECRET)
    under_old = _stored(client.pk)
    assert _readable_with(OLD_KEY, under_old)

    # when a new key is put first
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY, OLD_KEY]

    # then the old value still decrypts, and new secrets go under the new key
    reloaded = Client.objects.get(pk=client.pk)
    assert isinstance(reloaded.webhook_secret, EncryptedSecret)
    assert reloaded.webhook_secret.reveal() == SECRET
    newcomer = ClientFactory.create(webhook_url=URL, webhook_secret="another")
    assert _readable_with(NEW_KEY, _stored(newcomer.pk))
    assert not _readable_with(OLD_KEY, _stored(newcomer.pk))

    # when the client is saved again (any field)
    reloaded.name = "renamed"
    reloaded.save()

    # then its secret is under the new key, the same secret, and reads once the old key is dropped
    under_new = _stored(client.pk)
    assert under_new != under_old
    assert _readable_with(NEW_KEY, under_new)
    assert not _readable_with(OLD_KEY, under_new)
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY]
    assert secret_decrypt(under_new) == SECRET

    # and saving again under the same first key leaves the token as it is
    Client.objects.get(pk=client.pk).save()
    assert _stored(client.pk) == under_new


@pytest.mark.django_db
def test_reencrypting_every_secret_for_a_rotation(settings: Any) -> None:
    # given three secrets under the old key, one under a key nobody has any more, and a client without one
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OLD_KEY]
    rotated = [ClientFactory.create(code=f"ROT-{i}", webhook_url=URL, webhook_secret=f"secret-{i}") for i in range(3)]
    ClientFactory.create(code="PLAIN")
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OTHER_KEY]
    lost = ClientFactory.create(code="LOST", webhook_url=URL, webhook_secret="lost")
    lost_token = _stored(lost.pk)
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY, OLD_KEY]

    # when
    result = webhook_secrets_reencrypt(batch_size=2)

    # then the readable ones are under the new key, the unreadable one is named and left as it was
    assert (result.reencrypted, result.already_current, result.unreadable) == (3, 0, ("LOST",))
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY]
    assert [secret_decrypt(_stored(c.pk)) for c in rotated] == ["secret-0", "secret-1", "secret-2"]
    assert _stored(lost.pk) == lost_token

    # and the command says so, failing because of the unreadable one; a second run has nothing left to do
    with pytest.raises(CommandError, match=r"1 webhook secret\(s\) no configured key decrypts.*clients LOST\)"):
        call_command("webhook_secrets_reencrypt")
    Client.objects.filter(pk=lost.pk).delete()
    call_command("webhook_secrets_reencrypt")
    assert webhook_secrets_reencrypt() == type(result)(reencrypted=0, already_current=3, unreadable=())


@pytest.mark.django_db
def test_a_value_no_key_decrypts_is_a_clear_error_and_is_kept_on_save(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # given a secret encrypted under a key that is no longer configured
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OLD_KEY]
    client = ClientFactory.create(code="C-GONE", webhook_url=URL, webhook_secret=SECRET)
    stored = _stored(client.pk)
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY]
    reloaded = Client.objects.get(pk=client.pk)
    assert isinstance(reloaded.webhook_secret, EncryptedSecret)

    # then decrypting it is an error saying why (and never shows the token)
    with pytest.raises(SecretDecryptionError) as error:
        reloaded.webhook_secret.reveal()
    assert str(error.value) == (
        "no key of WORKOUT_WEBHOOK_SECRET_KEYS decrypts it (encrypted under a key no longer configured, or altered)"
    )
    assert stored not in str(error.value)

    # and saving the client for another reason keeps the value, with a warning naming the client
    reloaded.name = "renamed"
    reloaded.save()
    assert _stored(client.pk) == stored
    assert any(r.levelname == "WARNING" and "C-GONE" in r.getMessage() for r in caplog.records)

    # an altered token is refused the same way, not decrypted to something else
    altered = stored[:-8] + ("A" if stored[-8] != "A" else "B") + stored[-7:]
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OLD_KEY]
    with pytest.raises(SecretDecryptionError):
        secret_decrypt(altered)


def test_the_checks_refuse_a_bad_key_and_warn_in_deployment_when_none_is_set(settings: Any) -> None:
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY, "not-a-key"]
    (bad,) = checks.webhook_secret_keys_valid()
    assert (bad.id, bad.msg) == (
        "workout.E001",
        "WORKOUT_WEBHOOK_SECRET_KEYS: key 2 of 2 is not a Fernet key (32 url-safe base64-encoded bytes).",
    )
    assert checks.webhook_secret_keys_set() == []

    settings.WORKOUT_WEBHOOK_SECRET_KEYS = []
    assert checks.webhook_secret_keys_valid() == []
    (unset,) = checks.webhook_secret_keys_set()
    assert unset.id == "workout.W001"


# ----------------------------------------------------------------------------------------- the admin


@pytest.fixture
def admin_http(settings: Any) -> HttpClient:
    """A superuser signed in with password and authenticator code (the admin wants both: core/admin_site.py)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.SECURE_SSL_REDIRECT = False
    root = get_user_model().objects.create_superuser(username="root", password=PASSWORD)
    TOTPDevice.objects.create(user=root, name="authenticator", confirmed=True)
    return signed_in(root)


def _form(client: Client, **changes: str) -> dict[str, str]:
    return {
        "code": client.code,
        "name": client.name,
        "credit_tier": client.credit_tier,
        "group": "",
        "external_capacity": "0",
        "email": "",
        "webhook_url": URL,
        "webhook_secret": "",
        **changes,
    }


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
@pytest.mark.filterwarnings("ignore:The default scheme will be changed")  # the admin form of `webhook_url`
def test_the_admin_never_shows_the_secret_nor_changes_it(admin_http: HttpClient) -> None:
    # given
    client = ClientFactory.create(webhook_url=URL, webhook_secret=SECRET)
    token = _stored(client.pk)
    page = f"/admin/accounts/client/{client.pk}/change/"

    # the client's page (read-only, as the whole admin) shows neither the secret nor its token, only a mask
    body = admin_http.get(page).content.decode()
    assert "********" in body
    assert SECRET not in body
    assert token not in body
    assert token[:20] not in body

    # a new secret posted to it is refused, and the stored one stays
    changed = admin_http.post(page, _form(client, webhook_secret="the-new-secret"))
    assert changed.status_code == 403
    assert _stored(client.pk) == token


# ----------------------------------------------------------------------------------------- the migration

BEFORE = [("accounts", "0005_float_copies_for_the_sweep")]
AFTER = [("accounts", "0006_client_webhook_secret_encrypted")]


@pytest.fixture
def executor() -> Iterator[MigrationExecutor]:
    executor = MigrationExecutor(connection)
    yield executor
    # whatever the test did, the schema is back at the latest migrations for the tests that follow
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_the_clear_secrets_and_its_reverse_decrypts_them(executor: MigrationExecutor) -> None:
    # given the schema before, with a clear secret and a client without one
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    OldClient = old_apps.get_model("accounts", "Client")
    with_secret = OldClient.objects.create(code="MIG-1", name="m1", webhook_url=URL, webhook_secret=SECRET)
    without = OldClient.objects.create(code="MIG-2", name="m2")
    assert _stored(with_secret.pk) == SECRET

    # when migrating forward
    executor.loader.build_graph()
    executor.migrate(AFTER)

    # then the column holds a token of the secret, and no secret stays empty
    stored = _stored(with_secret.pk)
    assert stored != SECRET
    assert secret_decrypt(stored) == SECRET
    assert _stored(without.pk) == ""

    # when migrating back
    executor.loader.build_graph()
    executor.migrate(BEFORE)

    # then the clear value is back
    assert _stored(with_secret.pk) == SECRET
    assert _stored(without.pk) == ""

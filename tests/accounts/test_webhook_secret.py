"""A webhook endpoint's secret is encrypted at rest (core/encryption.py, core/fields.py): on every write path, under
the first configured key, readable with any of them; the clear value never leaves the process that signs with
it. The migration that brought this in encrypts the clear values there were, and its reverse decrypts them; the
one that made the client's webhook an endpoint (accounts/migrations/0008) copies the token as it is."""

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
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Client, WebhookEndpoint
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


def _stored(endpoint_id: int, column: str = "secret") -> str:
    """What the column holds, read around the ORM."""
    assert column in ("secret", "previous_secret")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM accounts_webhookendpoint WHERE id = %s", [endpoint_id])
        (value,) = cursor.fetchone()
    return str(value)


def _readable_with(key: str, token: str) -> bool:
    try:
        Fernet(key).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def _fields(client: Client, secret: str) -> dict[str, Any]:
    now = timezone.now()
    return {"client": client, "url": URL, "event_types": ["*"], "secret": secret, "created_at": now, "updated_at": now}


def _endpoint(secret: str = SECRET, code: str | None = None) -> WebhookEndpoint:
    client = ClientFactory.create(**({"code": code} if code else {}))
    return WebhookEndpoint.objects.create(**_fields(client, secret))


# ----------------------------------------------------------------------------------------- at rest


@pytest.mark.django_db
def test_the_column_holds_a_token_that_decrypts_to_the_secret() -> None:
    # when
    endpoint = _endpoint()

    # then the column is not the secret, and decrypts to it
    stored = _stored(endpoint.pk)
    assert stored != SECRET
    assert SECRET not in stored
    assert stored.startswith("gAAAAA")
    assert secret_decrypt(stored) == SECRET
    # a read gives the token, masked when shown; only `reveal()` gives the clear value
    read = WebhookEndpoint.objects.get(pk=endpoint.pk).secret
    assert read == EncryptedSecret(stored)
    assert isinstance(read, EncryptedSecret)
    assert (str(read), repr(read)) == ("********", "EncryptedSecret(********)")
    assert read.reveal() == SECRET
    assert WebhookEndpoint.objects.values_list("secret", flat=True).get(pk=endpoint.pk) == read


def _by_save(code: str) -> int:
    endpoint = WebhookEndpoint(**_fields(ClientFactory.create(code=code), "placeholder"))
    endpoint.secret = SECRET
    endpoint.save()
    return endpoint.pk


def _by_create(code: str) -> int:
    return WebhookEndpoint.objects.create(**_fields(ClientFactory.create(code=code), SECRET)).pk


def _by_update(code: str) -> int:
    endpoint = _endpoint("another", code)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=SECRET)
    return endpoint.pk


def _by_bulk_create(code: str) -> int:
    WebhookEndpoint.objects.bulk_create([WebhookEndpoint(**_fields(ClientFactory.create(code=code), SECRET))])
    return WebhookEndpoint.objects.get(client__code=code).pk


def _by_bulk_update(code: str) -> int:
    endpoint = _endpoint("another", code)
    endpoint.secret = SECRET
    WebhookEndpoint.objects.bulk_update([endpoint], ["secret"])
    return endpoint.pk


def _by_update_or_create(code: str) -> int:
    client = ClientFactory.create(code=code)
    fields = _fields(client, SECRET)
    endpoint, _ = WebhookEndpoint.objects.update_or_create(client=fields.pop("client"), defaults=fields)
    return endpoint.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    "write", [_by_save, _by_create, _by_update, _by_bulk_create, _by_bulk_update, _by_update_or_create]
)
def test_every_write_path_encrypts(write: Callable[[str], int]) -> None:
    endpoint_id = write("W-1")

    stored = _stored(endpoint_id)
    assert stored != SECRET
    assert secret_decrypt(stored) == SECRET


@pytest.mark.django_db
def test_no_previous_secret_stays_empty_and_the_constraints_hold_in_the_database() -> None:
    # given an endpoint that was never rotated
    endpoint = _endpoint()
    assert _stored(endpoint.pk, "previous_secret") == ""
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).previous_secret == ""

    # an endpoint without a secret is refused
    with pytest.raises(IntegrityError, match="webhookendpoint_secret_encrypted"), transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret="")

    # so is a clear secret written around the ORM, current or previous
    for column, constraint in (
        ("secret", "webhookendpoint_secret_encrypted"),
        ("previous_secret", "webhookendpoint_previous_secret_encrypted"),
    ):
        with (
            pytest.raises(IntegrityError, match=constraint),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                f"UPDATE accounts_webhookendpoint SET {column} = %s WHERE id = %s",
                [SECRET, endpoint.pk],
            )
    assert _stored(endpoint.pk, "previous_secret") == ""


@pytest.mark.django_db
def test_a_token_given_back_is_not_encrypted_twice() -> None:
    # given a token of the configured keys (a dump loaded again, a value copied from another row)
    first = _endpoint()
    token = _stored(first.pk)

    # when it is written as if it were a secret
    second = _endpoint(token)

    # then it is kept as that token: the secret is still the clear one, not the token
    assert _stored(second.pk) == token
    assert secret_decrypt(_stored(second.pk)) == SECRET


@pytest.mark.django_db
def test_a_token_under_a_key_not_configured_is_kept_and_refused_when_signing() -> None:
    # given a token made under a key this environment does not have (a dump from elsewhere, a key removed)
    foreign = Fernet(OTHER_KEY).encrypt(SECRET.encode()).decode()

    # when it is written as the secret
    endpoint = _endpoint(foreign)

    # then it is stored as that token, not encrypted again (signatures made with its text would be silently
    # wrong): reading it says no key decrypts it
    assert _stored(endpoint.pk) == foreign
    secret = WebhookEndpoint.objects.get(pk=endpoint.pk).secret
    assert isinstance(secret, EncryptedSecret)
    with pytest.raises(SecretDecryptionError):
        secret.reveal()


@pytest.mark.django_db
def test_a_saved_instance_holds_the_token_not_the_clear_secret() -> None:
    endpoint = _endpoint("another")
    endpoint.secret = SECRET

    endpoint.save()

    assert isinstance(endpoint.secret, EncryptedSecret)
    assert endpoint.secret.token == _stored(endpoint.pk)
    assert SECRET not in repr(vars(endpoint))


@pytest.mark.django_db
def test_full_clean_refuses_a_secret_longer_than_200_characters_and_an_endpoint_without_one() -> None:
    client = ClientFactory.create()
    too_long = WebhookEndpoint(**_fields(client, "x" * 201))
    with pytest.raises(ValidationError) as long_error:
        too_long.full_clean()
    assert long_error.value.message_dict == {"secret": ["The secret has 201 characters, more than 200."]}

    without = WebhookEndpoint(**_fields(client, ""))
    with pytest.raises(ValidationError) as missing:
        without.full_clean()
    assert missing.value.message_dict == {"secret": ["This field cannot be blank."]}

    WebhookEndpoint(**_fields(client, "x" * 200)).full_clean()


# ----------------------------------------------------------------------------------------- keys and rotation


@pytest.mark.django_db
def test_with_no_keys_set_a_key_derived_from_secret_key_encrypts(settings: Any) -> None:
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = []
    endpoint = _endpoint()

    stored = _stored(endpoint.pk)
    assert Fernet(key_derived_from(settings.SECRET_KEY)).decrypt(stored.encode()).decode() == SECRET
    # and the old SECRET_KEY still reads it after SECRET_KEY changes, while kept in the fallbacks
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert secret_decrypt(stored) == SECRET


@pytest.mark.django_db
def test_rotation_old_values_still_decrypt_and_resaving_encrypts_under_the_new_key(settings: Any) -> None:
    # given a secret written under the old key
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OLD_KEY]
    endpoint = _endpoint()
    under_old = _stored(endpoint.pk)
    assert _readable_with(OLD_KEY, under_old)

    # when a new key is put first
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY, OLD_KEY]

    # then the old value still decrypts, and new secrets go under the new key
    reloaded = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert isinstance(reloaded.secret, EncryptedSecret)
    assert reloaded.secret.reveal() == SECRET
    newcomer = _endpoint("another")
    assert _readable_with(NEW_KEY, _stored(newcomer.pk))
    assert not _readable_with(OLD_KEY, _stored(newcomer.pk))

    # when the endpoint is saved again (any field)
    reloaded.description = "renamed"
    reloaded.save()

    # then its secret is under the new key, the same secret, and reads once the old key is dropped
    under_new = _stored(endpoint.pk)
    assert under_new != under_old
    assert _readable_with(NEW_KEY, under_new)
    assert not _readable_with(OLD_KEY, under_new)
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY]
    assert secret_decrypt(under_new) == SECRET

    # and saving again under the same first key leaves the token as it is
    WebhookEndpoint.objects.get(pk=endpoint.pk).save()
    assert _stored(endpoint.pk) == under_new


@pytest.mark.django_db
def test_reencrypting_every_secret_for_a_rotation(settings: Any) -> None:
    # given three secrets under the old key (one of them rotated, its previous secret still signing), one under a
    # key nobody has any more, and a client without an endpoint
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OLD_KEY]
    rotated = [_endpoint(f"secret-{i}", f"ROT-{i}") for i in range(3)]
    WebhookEndpoint.objects.filter(pk=rotated[0].pk).update(
        previous_secret="previous-0", previous_secret_expires_at=timezone.now()
    )
    ClientFactory.create(code="PLAIN")
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OTHER_KEY]
    lost = _endpoint("lost", "LOST")
    lost_token = _stored(lost.pk)
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY, OLD_KEY]

    # when
    result = webhook_secrets_reencrypt(batch_size=2)

    # then the readable ones are under the new key, the unreadable one is named and left as it was
    assert (result.reencrypted, result.already_current, result.unreadable) == (4, 0, ("LOST",))
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY]
    assert [secret_decrypt(_stored(e.pk)) for e in rotated] == ["secret-0", "secret-1", "secret-2"]
    assert secret_decrypt(_stored(rotated[0].pk, "previous_secret")) == "previous-0"
    assert _stored(lost.pk) == lost_token

    # and the command says so, failing because of the unreadable one; a second run has nothing left to do
    with pytest.raises(CommandError, match=r"1 webhook secret\(s\) no configured key decrypts.*clients LOST\)"):
        call_command("webhook_secrets_reencrypt")
    WebhookEndpoint.objects.filter(pk=lost.pk).delete()
    call_command("webhook_secrets_reencrypt")
    assert webhook_secrets_reencrypt() == type(result)(reencrypted=0, already_current=4, unreadable=())


@pytest.mark.django_db
def test_a_value_no_key_decrypts_is_a_clear_error_and_is_kept_on_save(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # given a secret encrypted under a key that is no longer configured
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OLD_KEY]
    endpoint = _endpoint(code="C-GONE")
    stored = _stored(endpoint.pk)
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY]
    reloaded = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert isinstance(reloaded.secret, EncryptedSecret)

    # then decrypting it is an error saying why (and never shows the token)
    with pytest.raises(SecretDecryptionError) as error:
        reloaded.secret.reveal()
    assert str(error.value) == (
        "no key of WORKOUT_WEBHOOK_SECRET_KEYS decrypts it (encrypted under a key no longer configured, or altered)"
    )
    assert stored not in str(error.value)

    # and saving the endpoint for another reason keeps the value, with a warning naming the endpoint
    reloaded.description = "renamed"
    reloaded.save()
    assert _stored(endpoint.pk) == stored
    assert any(r.levelname == "WARNING" and str(reloaded) in r.getMessage() for r in caplog.records)

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


def _form(endpoint: WebhookEndpoint, **changes: str) -> dict[str, str]:
    return {
        "client": str(endpoint.client_id),
        "url": URL,
        "description": "",
        "event_types": '["*"]',
        "secret": "",
        "state": "active",
        **changes,
    }


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
@pytest.mark.filterwarnings("ignore:The default scheme will be changed")  # the admin form of `url`
def test_the_admin_never_shows_the_secret_nor_changes_it(admin_http: HttpClient) -> None:
    # given
    endpoint = _endpoint()
    token = _stored(endpoint.pk)
    page = f"/admin/accounts/webhookendpoint/{endpoint.pk}/change/"

    # the endpoint's page (read-only, as the whole admin) shows neither the secret nor its token, only a mask
    body = admin_http.get(page).content.decode()
    assert "********" in body
    assert SECRET not in body
    assert token not in body
    assert token[:20] not in body

    # a new secret posted to it is refused, and the stored one stays
    changed = admin_http.post(page, _form(endpoint, secret="the-new-secret"))
    assert changed.status_code == 403
    assert _stored(endpoint.pk) == token


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
    assert _client_column(with_secret.pk) == SECRET

    # when migrating forward
    executor.loader.build_graph()
    executor.migrate(AFTER)

    # then the column holds a token of the secret, and no secret stays empty
    stored = _client_column(with_secret.pk)
    assert stored != SECRET
    assert secret_decrypt(stored) == SECRET
    assert _client_column(without.pk) == ""

    # when migrating back
    executor.loader.build_graph()
    executor.migrate(BEFORE)

    # then the clear value is back
    assert _client_column(with_secret.pk) == SECRET
    assert _client_column(without.pk) == ""


def _client_column(client_id: int) -> str:
    """The client's webhook secret column of the schema before endpoints, read around the ORM."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM accounts_client WHERE id = %s", [client_id])
        (value,) = cursor.fetchone()
    return str(value)


BEFORE_ENDPOINTS = [("accounts", "0007_apitoken_from_core")]
WITH_ENDPOINTS = [("accounts", "0008_webhook_endpoints")]


@pytest.mark.django_db(transaction=True)
def test_the_clients_webhook_becomes_an_endpoint_for_every_event_and_comes_back(executor: MigrationExecutor) -> None:
    # given the schema before endpoints: a client with a webhook (its secret encrypted) and one without
    executor.migrate(BEFORE_ENDPOINTS)
    OldClient = executor.loader.project_state(BEFORE_ENDPOINTS).apps.get_model("accounts", "Client")
    hooked = OldClient.objects.create(code="MIG-H", name="h", webhook_url=URL, webhook_secret=SECRET)
    plain = OldClient.objects.create(code="MIG-P", name="p")
    token = _client_column(hooked.pk)
    assert token.startswith("gAAAAA")

    # when migrating forward
    executor.loader.build_graph()
    executor.migrate(WITH_ENDPOINTS)

    # then the webhook is an active endpoint subscribed to every event, with the same token; the other has none
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT client_id, url, secret, event_types::text, state, consecutive_failures "
            "FROM accounts_webhookendpoint ORDER BY id"
        )
        rows = cursor.fetchall()
    assert rows == [(hooked.pk, URL, token, '["*"]', "active", 0)]
    assert secret_decrypt(rows[0][2]) == SECRET
    with connection.cursor() as cursor:
        cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts_client'")
        assert not {"webhook_url", "webhook_secret"} & {name for (name,) in cursor.fetchall()}

    # when migrating back
    executor.loader.build_graph()
    executor.migrate(BEFORE_ENDPOINTS)

    # then the client's webhook is back as it was
    assert _client_column(hooked.pk) == token
    assert _client_column(plain.pk) == ""

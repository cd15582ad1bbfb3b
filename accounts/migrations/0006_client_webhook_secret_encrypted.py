# Clients' webhook secrets encrypted at rest (core/encryption.py): the column becomes text (a token is longer than
# the secret), every clear value is encrypted under the first key of WORKOUT_WEBHOOK_SECRET_KEYS, and then the
# database refuses anything but a token or ''. Reversed: the tokens are decrypted back to the clear values (and a
# token no configured key decrypts stops the reversal, naming the client, rather than leaving a token where a
# clear secret is expected).

from django.db import migrations, models

import core.fields
from core.encryption import SecretDecryptionError, is_token, secret_decrypt, secret_encrypt


def _stored(apps, schema_editor):
    Client = apps.get_model("accounts", "Client")
    table = schema_editor.quote_name(Client._meta.db_table)
    # Raw rows: the historical field would wrap the values it reads, and encrypt the ones it writes.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, code, webhook_secret FROM {table} WHERE webhook_secret <> %s ORDER BY id", [""])
        return table, cursor.fetchall()


def _write(schema_editor, table, updates):
    with schema_editor.connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET webhook_secret = %s WHERE id = %s", updates)


def encrypt_clear_secrets(apps, schema_editor):
    """Each clear secret becomes its token under the first key; a value that already is a token is left."""
    table, rows = _stored(apps, schema_editor)
    _write(schema_editor, table, [(secret_encrypt(value), pk) for pk, _code, value in rows if not is_token(value)])


def decrypt_to_clear_secrets(apps, schema_editor):
    table, rows = _stored(apps, schema_editor)
    updates = []
    for pk, code, value in rows:
        try:
            updates.append((secret_decrypt(value), pk))
        except SecretDecryptionError as error:
            raise RuntimeError(f"the webhook secret of client {code} cannot be decrypted back: {error}") from None
    _write(schema_editor, table, updates)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_float_copies_for_the_sweep'),
    ]

    operations = [
        migrations.AlterField(
            model_name='client',
            name='webhook_secret',
            field=core.fields.EncryptedSecretField(blank=True, clear_max_length=200, db_default='', default='', help_text='Write-only: the current secret is never shown. Leave blank to keep it.'),
        ),
        migrations.RunPython(encrypt_clear_secrets, decrypt_to_clear_secrets, elidable=False),
        migrations.AddConstraint(
            model_name='client',
            constraint=models.CheckConstraint(condition=models.Q(('webhook_secret', ''), ('webhook_secret__startswith', 'gAAAAA'), _connector='OR'), name='client_webhook_secret_encrypted'),
        ),
        migrations.AlterConstraint(
            model_name='client',
            name='client_webhook_has_secret',
            constraint=models.CheckConstraint(condition=models.Q(('webhook_url', ''), models.Q(('webhook_secret', ''), _negated=True), _connector='OR'), name='client_webhook_has_secret', violation_error_message='A webhook URL needs a webhook secret to sign with.'),
        ),
    ]

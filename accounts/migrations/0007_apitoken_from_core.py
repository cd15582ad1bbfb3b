# The API's tokens move from core to accounts (core imports nothing above it; a token belongs to a client). Only
# Django's state moves: the table stays core_apitoken, with its rows, constraints and indexes. The content type
# (and so any permission granted on tokens) moves along; the tokens' audit events keep the object type
# "core.apitoken" (ApiToken.audit_object_type), stored and new alike.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def content_type_move(apps, schema_editor):
    _content_type_relabel(apps, schema_editor.connection.alias, "core", "accounts")


def content_type_back(apps, schema_editor):
    _content_type_relabel(apps, schema_editor.connection.alias, "accounts", "core")


def _content_type_relabel(apps, db, old, new):
    # On a fresh database there is none yet (content types are made after migrate): nothing to do.
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.using(db).filter(app_label=new, model="apitoken").exists():
        ContentType.objects.using(db).filter(app_label=old, model="apitoken").update(app_label=new)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0006_client_webhook_secret_encrypted'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('core', '0003_staff_controls'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ApiToken',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('prefix', models.CharField(max_length=16, unique=True)),
                        ('digest', models.CharField(max_length=64, unique=True)),
                        ('name', models.CharField(blank=True, default='', max_length=100)),
                        ('created_at', models.DateTimeField()),
                        ('expires_at', models.DateTimeField()),
                        ('revoked_at', models.DateTimeField(blank=True, null=True)),
                        ('last_used_at', models.DateTimeField(blank=True, null=True)),
                        ('client', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to='accounts.client')),
                        ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'core_apitoken',
                        'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('client__isnull', False), ('user__isnull', True)), models.Q(('client__isnull', True), ('user__isnull', False)), _connector='OR'), name='apitoken_client_xor_user'), models.CheckConstraint(condition=models.Q(('expires_at__gt', models.F('created_at'))), name='apitoken_expires_later')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_move, content_type_back),
    ]

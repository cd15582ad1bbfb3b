# Webhook endpoints (issue 18): a client's one webhook (Client.webhook_url and its encrypted webhook_secret) becomes
# an endpoint of its own, subscribed to every event ("*", those added later too), so that what those clients
# receive does not change; then the two columns go. The secret's token is copied as it is (it stays encrypted,
# under the key that made it). The reverse puts each client's oldest endpoint back in the columns.
# restructuring/migrations/0012 then points the webhook notifications at these endpoints.

import core.fields
import django.core.validators
import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone


def endpoints_from_clients(apps, schema_editor):
    Client = apps.get_model("accounts", "Client")
    WebhookEndpoint = apps.get_model("accounts", "WebhookEndpoint")
    db = schema_editor.connection.alias
    now = timezone.now()
    WebhookEndpoint.objects.using(db).bulk_create(
        [
            WebhookEndpoint(
                client_id=client_id,
                url=url,
                secret=secret,
                event_types=["*"],
                description="the client's webhook before endpoints",
                created_at=now,
                updated_at=now,
            )
            for client_id, url, secret in Client.objects.using(db)
            .exclude(webhook_url="")
            .order_by("pk")
            .values_list("pk", "webhook_url", "webhook_secret")
        ],
        batch_size=1000,
    )


def clients_from_endpoints(apps, schema_editor):
    Client = apps.get_model("accounts", "Client")
    WebhookEndpoint = apps.get_model("accounts", "WebhookEndpoint")
    db = schema_editor.connection.alias
    done = set()
    for client_id, url, secret in WebhookEndpoint.objects.using(db).order_by("pk").values_list(
        "client_id", "url", "secret"
    ):
        if client_id not in done:
            done.add(client_id)
            Client.objects.using(db).filter(pk=client_id).update(webhook_url=url, webhook_secret=secret)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0007_apitoken_from_core'),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.URLField(max_length=2000, validators=[django.core.validators.URLValidator(schemes=['https', 'http'])])),
                ('description', models.CharField(blank=True, default='', max_length=200)),
                ('event_types', models.JSONField(default=list)),
                ('secret', core.fields.EncryptedSecretField(clear_max_length=200, help_text='Write-only: the current secret is never shown.')),
                ('previous_secret', core.fields.EncryptedSecretField(blank=True, clear_max_length=200, default='')),
                ('previous_secret_expires_at', models.DateTimeField(blank=True, null=True)),
                ('secret_rotated_at', models.DateTimeField(blank=True, null=True)),
                ('state', models.CharField(choices=[('active', 'Active'), ('disabled', 'Disabled')], default='active', max_length=8)),
                ('disabled_reason', models.CharField(blank=True, choices=[('client', 'Disabled by the client'), ('failures', 'Disabled after consecutive failed deliveries')], default='', max_length=8)),
                ('disabled_at', models.DateTimeField(blank=True, null=True)),
                ('consecutive_failures', models.PositiveIntegerField(default=0)),
                ('created_at', models.DateTimeField()),
                ('updated_at', models.DateTimeField()),
            ],
        ),
        migrations.AddField(
            model_name='webhookendpoint',
            name='client',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='webhook_endpoints', to='accounts.client'),
        ),
        migrations.AddIndex(
            model_name='webhookendpoint',
            index=models.Index(fields=['client', 'state'], name='webhookendpoint_client_idx'),
        ),
        migrations.AddConstraint(
            model_name='webhookendpoint',
            constraint=models.CheckConstraint(condition=models.Q(('secret__startswith', 'gAAAAA')), name='webhookendpoint_secret_encrypted'),
        ),
        migrations.AddConstraint(
            model_name='webhookendpoint',
            constraint=models.CheckConstraint(condition=models.Q(('previous_secret', ''), ('previous_secret__startswith', 'gAAAAA'), _connector='OR'), name='webhookendpoint_previous_secret_encrypted'),
        ),
        migrations.AddConstraint(
            model_name='webhookendpoint',
            constraint=models.CheckConstraint(condition=models.Q(('state__in', ['active', 'disabled'])), name='webhookendpoint_state_valid'),
        ),
        migrations.AddConstraint(
            model_name='webhookendpoint',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('disabled_at__isnull', True), ('disabled_reason', ''), ('state', 'active')), models.Q(('disabled_at__isnull', False), ('disabled_reason__in', ['client', 'failures']), ('state', 'disabled')), _connector='OR'), name='webhookendpoint_disabled_with_reason'),
        ),
        migrations.RunPython(endpoints_from_clients, clients_from_endpoints),
        migrations.RemoveConstraint(
            model_name='client',
            name='client_webhook_has_secret',
        ),
        migrations.RemoveConstraint(
            model_name='client',
            name='client_webhook_secret_encrypted',
        ),
        migrations.RemoveField(
            model_name='client',
            name='webhook_secret',
        ),
        migrations.RemoveField(
            model_name='client',
            name='webhook_url',
        ),
    ]

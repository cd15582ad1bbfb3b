# Webhook endpoints and their delivery log (issue 18): a webhook notification names the endpoint it goes to (one
# row per subscribed endpoint, so the endpoint joins the row's uniqueness), and every attempt to post one is
# logged. The webhook rows written before point at the endpoint their client's webhook became
# (accounts/migrations/0008); those of a client whose webhook was removed before then have none. A new kind,
# webhook_disabled: the email that tells a client one of its endpoints was disabled after its failures.

import django.db.models.deletion
from django.db import migrations, models


def webhook_rows_to_endpoints(apps, schema_editor):
    Notification = apps.get_model("restructuring", "Notification")
    WebhookEndpoint = apps.get_model("accounts", "WebhookEndpoint")
    db = schema_editor.connection.alias
    oldest: dict[int, int] = {}
    for client_id, endpoint_id in WebhookEndpoint.objects.using(db).order_by("pk").values_list("client_id", "pk"):
        oldest.setdefault(client_id, endpoint_id)
    for client_id, endpoint_id in oldest.items():
        Notification.objects.using(db).filter(channel="webhook", case__account__client_id=client_id).update(
            webhook_endpoint_id=endpoint_id
        )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0008_webhook_endpoints'),
        ('restructuring', '0011_merge_desk_and_conversation'),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('attempted_at', models.DateTimeField()),
                ('duration_ms', models.PositiveIntegerField()),
                ('status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('succeeded', models.BooleanField()),
                ('error', models.TextField(blank=True, default='')),
            ],
        ),
        migrations.AlterModelOptions(
            name='notification',
            options={'permissions': [('redeliver_notification', 'Can deliver a webhook notification again')]},
        ),
        migrations.RemoveConstraint(
            model_name='notification',
            name='notification_once_per_event_channel',
        ),
        migrations.RemoveConstraint(
            model_name='notification',
            name='notification_kind_valid',
        ),
        migrations.AddField(
            model_name='notification',
            name='webhook_endpoint',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='notifications', to='accounts.webhookendpoint'),
        ),
        migrations.AlterField(
            model_name='notification',
            name='kind',
            field=models.CharField(choices=[('margin_call', 'Margin call'), ('deadline_reminder', 'Margin call deadline reminder'), ('offer', 'Offer of restructured terms'), ('liquidation', 'Liquidation started'), ('cured', 'Outcome: cured'), ('liquidated', 'Outcome: liquidated'), ('written_off', 'Outcome: written off'), ('sla_breach', 'Escalation: SLA target breached'), ('webhook_disabled', 'Webhook endpoint disabled')], max_length=17),
        ),
        migrations.AddConstraint(
            model_name='notification',
            constraint=models.UniqueConstraint(condition=models.Q(('webhook_endpoint__isnull', True)), fields=('case', 'kind', 'channel', 'dedupe_key'), name='notification_once_per_event_channel'),
        ),
        migrations.AddConstraint(
            model_name='notification',
            constraint=models.UniqueConstraint(condition=models.Q(('webhook_endpoint__isnull', False)), fields=('case', 'kind', 'dedupe_key', 'webhook_endpoint'), name='notification_once_per_endpoint'),
        ),
        migrations.AddConstraint(
            model_name='notification',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['margin_call', 'deadline_reminder', 'offer', 'liquidation', 'cured', 'liquidated', 'written_off', 'sla_breach', 'webhook_disabled'])), name='notification_kind_valid'),
        ),
        migrations.AddField(
            model_name='webhookdelivery',
            name='endpoint',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='deliveries', to='accounts.webhookendpoint'),
        ),
        migrations.AddField(
            model_name='webhookdelivery',
            name='notification',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='deliveries', to='restructuring.notification'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['endpoint', '-attempted_at'], name='webhookdelivery_endpoint_idx'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['notification', 'attempted_at'], name='webhookdelivery_notice_idx'),
        ),
        migrations.AddConstraint(
            model_name='webhookdelivery',
            constraint=models.CheckConstraint(condition=models.Q(('succeeded', False), models.Q(('status_code__gte', 200), ('status_code__lt', 300)), _connector='OR'), name='webhookdelivery_success_is_2xx'),
        ),
        migrations.RunPython(webhook_rows_to_endpoints, migrations.RunPython.noop),
    ]

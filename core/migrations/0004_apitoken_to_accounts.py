# The API's tokens now belong to accounts (accounts/migrations/0007_apitoken_from_core.py): core forgets the
# model; the table core_apitoken and its rows stay as they are.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0007_apitoken_from_core'),
        ('core', '0003_staff_controls'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='ApiToken')],
            database_operations=[],
        ),
    ]

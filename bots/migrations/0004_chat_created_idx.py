"""An index for the admin's message list newest first and for purge_messages.

chat_messages may hold millions of rows when this runs: on PostgreSQL the index is built
CONCURRENTLY (writes go on while it builds; hence atomic = False), elsewhere as usual.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            concurrently = AddIndexConcurrently(self.model_name, self.index)
            concurrently.database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            super().database_forwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("bots", "0003_chat_secret_interrupted"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="chatmessage",
            index=models.Index(fields=["-created_at", "-id"], name="chat_created_idx"),
        ),
    ]

"""Existing DRF tokens (rest_framework.authtoken, plaintext keys) become hashed API tokens.

Clients keep sending the same "Authorization: Token <key>"; only its SHA-256 digest and
8-character prefix are kept. The plaintext rows are then deleted (the table itself
stays, empty, so the migration history of the old app remains consistent).
"""

import datetime
import hashlib

from django.db import migrations

LEGACY_TABLE = "authtoken_token"


def hash_drf_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("apitokens", "ApiToken")
    table = schema_editor.quote_name(LEGACY_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {table}")  # noqa: S608 - a constant name
        rows = cursor.fetchall()
    tokens = []
    for key, user_id, created in rows:
        if isinstance(created, str):  # SQLite without type detection
            created = datetime.datetime.fromisoformat(created)
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=datetime.UTC)
        tokens.append(
            ApiToken(
                user_id=user_id,
                name="migrated DRF token",
                prefix=key[:8],
                digest=hashlib.sha256(key.encode()).hexdigest(),
                created_at=created or datetime.datetime.now(datetime.UTC),
            )
        )
    ApiToken.objects.bulk_create(tokens)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - a constant name


class Migration(migrations.Migration):
    dependencies = [("apitokens", "0001_initial")]

    # One way: a digest cannot be turned back into a key.
    operations = [migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop)]

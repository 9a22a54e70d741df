"""The audit log, run-time flags and stored metrics now belong to deia (deia/models.py):
their model state leaves ops, their tables stay (see deia 0001)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("ops", "0003_operations_permissions"),
        ("deia", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="AuditLog"),
                migrations.DeleteModel(name="RuntimeFlag"),
                migrations.DeleteModel(name="MetricValue"),
            ],
        ),
    ]

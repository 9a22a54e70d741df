"""Each audit row stores its action's declared severity (deia/audit_actions.py).

Rows written before carry the severity their action has now: failures ("error" in the
name) become error, the refusals and clean-ups below warning, the rest info (the default).
The lists are frozen here as the declaration stood, as a migration must not import code
that changes later.
"""

from django.db import migrations, models

WARNINGS = [
    "bot.start_refused",
    "bot.start_denied",
    "bot.stop_denied",
    "bot.restart_denied",
    "bot.crash",
    "bot.stray_killed",
    "bot.orphan_killed",
    "auth.login_failed",
    "auth.lockout",
]


def backfill(apps, schema_editor):
    AuditLog = apps.get_model("deia", "AuditLog")
    AuditLog.objects.filter(action__contains="error").update(severity="error")
    AuditLog.objects.filter(action__in=WARNINGS).update(severity="warning")


class Migration(migrations.Migration):
    dependencies = [
        ("deia", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditlog",
            name="severity",
            field=models.CharField(
                choices=[("info", "Info"), ("warning", "Warning"), ("error", "Error")],
                default="info",
                editable=False,
                max_length=10,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="auditlog",
            index=models.Index(fields=["severity", "-created_at"], name="audit_severity_created_idx"),
        ),
    ]

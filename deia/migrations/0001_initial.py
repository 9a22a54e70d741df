"""The audit log, run-time flags and stored metrics move from ops to the project (deia).

Their tables stay where they are (audit_logs, ops_runtimeflag, ops_metricvalue): only
Django's model state moves, and the content types are renamed so that permissions
granted on them (view_auditlog ...) stay granted.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ("auditlog", "runtimeflag", "metricvalue")


def rename_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="deia", model=model).exists():
            ContentType.objects.filter(app_label="ops", model=model).update(app_label="deia")


def unrename_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="deia", model__in=MOVED).update(app_label="ops")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("contenttypes", "0002_remove_content_type_name"),
        # The tables are created by ops' first migration; here only the state moves.
        ("ops", "0003_operations_permissions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='RuntimeFlag',
                    fields=[
                        ('name', models.CharField(max_length=50, primary_key=True, serialize=False)),
                        ('enabled', models.BooleanField(default=False)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('updated_by', models.CharField(blank=True, max_length=150)),
                    ],
                    options={
                        'db_table': 'ops_runtimeflag',
                    },
                ),
                migrations.CreateModel(
                    name='MetricValue',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100)),
                        ('labels', models.CharField(blank=True, help_text='Canonical k=v pairs, sorted, comma-separated', max_length=200)),
                        ('value', models.FloatField(default=0)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'ops_metricvalue',
                        'constraints': [models.UniqueConstraint(fields=('name', 'labels'), name='metric_name_labels_uniq')],
                    },
                ),
                migrations.CreateModel(
                    name='AuditLog',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ('actor', models.CharField(help_text='User name, or a system actor such as reconcile or celery', max_length=150)),
                        ('action', models.CharField(help_text='Dotted name, e.g. bot.start or bot.start_error', max_length=100)),
                        ('target', models.CharField(blank=True, max_length=200)),
                        ('details', models.JSONField(blank=True, default=dict)),
                        ('ip', models.GenericIPAddressField(blank=True, null=True)),
                        ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'audit_logs',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(fields=['-created_at'], name='audit_created_idx'), models.Index(fields=['action', '-created_at'], name='audit_action_created_idx')],
                    },
                ),
            ],
        ),
        migrations.RunPython(rename_content_types, unrename_content_types),
    ]

from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "Delete chat messages older than CHAT_RETENTION_DAYS, in batches (skipped when unset)."
    job = "purge_messages"

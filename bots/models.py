from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.contrib.auth.models import Group
from django.db import connection, models
from django.db.models import Count
from django.utils import timezone


class Backend(models.TextChoices):
    OLLAMA = "ollama", "Ollama"
    OPENAI = "openai", "OpenAI-compatible"
    ECHO = "echo", "Echo (demo)"


class DesiredState(models.TextChoices):
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"


class Status(models.TextChoices):
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    CRASHED = "crashed", "Crashed"
    ERROR = "error", "Error"
    # Its host was lost: the process may still live there (fenced by the generation).
    LOST = "lost", "Lost"


# A process may exist (or be about to) in these states; its pid/port are meaningful.
PROCESS_STATES = {Status.STARTING, Status.RUNNING, Status.STOPPING}
# The process a bot holds: set by a start, cleared together when it ends (bots.lifecycle).
PROCESS_FIELDS = ("pid", "port", "host", "advertise_host", "started_at", "last_heartbeat", "chat_secret")
# What the lifecycle observes and writes, in the order the admin shows it (never chat_secret).
OBSERVED_FIELDS = (
    *("status", "pid", "host", "port", "advertise_host", "started_at", "last_heartbeat", "generation"),
    *("startup_seconds", "restart_count", "start_failures", "next_start_at", "last_error"),
)


class Role(models.TextChoices):
    SYSTEM = "system", "System"
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


class BotQuerySet(models.QuerySet):
    def running(self) -> BotQuerySet:
        return self.filter(status=Status.RUNNING)

    def with_process(self) -> BotQuerySet:
        return self.filter(status__in=PROCESS_STATES)

    def desired_running(self) -> BotQuerySet:
        return self.filter(desired_state=DesiredState.RUNNING)

    def placed(self) -> BotQuerySet:
        """Bots that count on their host: with a process, or to start there (a lost bot counts where it is
        placed next, or on its lost host until then); not one in error, which waits for an operator."""
        due = models.Q(desired_state=DesiredState.RUNNING, status__in=[Status.STOPPED, Status.CRASHED, Status.LOST])
        return self.exclude(host="").filter(models.Q(status__in=PROCESS_STATES) | due)

    def per_host(self) -> dict[str, int]:
        """{host name: bots placed there}."""
        rows = self.placed().order_by().values("host").annotate(n=Count("id"))
        return {row["host"]: row["n"] for row in rows}

    def by_ref(self, ref: str) -> Bot | None:
        """The bot an operator names by id or slug (botctl, runbot), or None."""
        bot = self.filter(pk=int(ref)).first() if ref.isdigit() else None
        return bot or self.filter(slug=ref).first()


class Bot(models.Model):
    """A chat bot. Operators write `desired_state`; only bots.lifecycle writes `status`."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.OLLAMA)
    model_name = models.CharField(max_length=200, default="llama3.2", help_text="Model the backend serves")
    system_prompt = models.TextField(blank=True)
    # SET_NULL, not PROTECT: deleting a team never deletes a bot nor is blocked by one; its
    # bots fall back to "no team", which only superusers and bots.manage_all_bots see (fails closed).
    team = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bots",
        help_text="The team (group) whose members see and act on this bot; empty: only bot managers see it",
    )

    desired_state = models.CharField(max_length=20, choices=DesiredState.choices, default=DesiredState.STOPPED)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.STOPPED, editable=False)
    port = models.PositiveIntegerField(null=True, blank=True, unique=True, editable=False)
    pid = models.PositiveIntegerField(null=True, blank=True, editable=False)
    host = models.CharField(max_length=255, blank=True, editable=False, help_text="Host whose worker owns the process")
    advertise_host = models.CharField(
        max_length=255, blank=True, editable=False, help_text="Address web and Prometheus use to reach the bot"
    )
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_heartbeat = models.DateTimeField(null=True, blank=True, editable=False)
    startup_seconds = models.FloatField(null=True, blank=True, editable=False)
    restart_count = models.PositiveIntegerField(default=0, editable=False)
    start_failures = models.PositiveIntegerField(
        default=0, editable=False, help_text="Consecutive failed starts; reset by a healthy run or an operator start"
    )
    next_start_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="Backoff: no start before")
    last_error = models.TextField(blank=True, editable=False)
    # Given to the runner at each start (in its environment) and sent by the web's relay:
    # /chat refuses a request without it. Never shown in the admin, the API or the audit.
    chat_secret = models.CharField(max_length=64, blank=True, editable=False)
    # Set by an operator's delete while the process still runs: the stop transition deletes
    # the row once the process is gone. The intent lives here, never in a task's arguments.
    delete_requested = models.BooleanField(default=False, editable=False)
    # Fencing: +1 at every placement and claim. A runner knows its own (environment); its
    # heartbeat is accepted only while it is current (or the handover's, during a drain).
    generation = models.PositiveBigIntegerField(default=0, editable=False)
    required_label = models.CharField(
        max_length=100, blank=True, help_text="Run only on hosts with this label (HOST_LABELS); empty: any host"
    )
    # A drain's move: the other process of the bot while it moves between hosts (before the
    # switch: the new one being started; after: the old one finishing its chats). Empty otherwise.
    handover = models.JSONField(default=dict, blank=True, editable=False)
    handover_generation = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BotQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        # Declared once; bots.access names them, the README's "Who may do what" table explains them.
        permissions = [
            ("operate_bot", "Can start, stop and restart bots"),
            ("chat_bot", "Can send messages to bots and read their messages"),
            ("manage_all_bots", "Can see and act on every team's bots"),
            ("manage_hosts", "Can drain and undrain hosts"),
        ]
        indexes = [
            # Reconcile scans bots by desired state and status every 10 s.
            models.Index(fields=["desired_state", "status"], name="bot_desired_status_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def address(self) -> str:
        if not self.port:
            return ""
        return f"{self.advertise_host or self.host or '127.0.0.1'}:{self.port}"

    @property
    def uptime(self) -> timedelta | None:
        if self.status != Status.RUNNING or self.started_at is None:
            return None
        return timezone.now() - self.started_at


class ChatMessage(models.Model):
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="messages")
    conversation = models.UUIDField(default=uuid.uuid4)
    role = models.CharField(max_length=20, choices=Role.choices)
    content = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Set when the LLM failed to answer")
    interrupted = models.BooleanField(
        default=False, help_text="The client went away mid-answer: content is what was generated until then"
    )
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        db_table = "chat_messages"
        ordering = ["-created_at", "-id"]
        indexes = [
            # A bot's history newest first (API, admin, the guide's own index).
            models.Index(fields=["bot", "-created_at"], name="chat_bot_created_idx"),
            # The recent history of one conversation, sent to the LLM with each message.
            models.Index(fields=["conversation", "-created_at"], name="chat_conversation_idx"),
            # The admin's message list newest first (its first page, the date hierarchy's
            # MIN/MAX) and purge_messages' created_at < cutoff, without reading the table.
            models.Index(fields=["-created_at", "-id"], name="chat_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


def db_now() -> datetime:
    """The database's clock (PostgreSQL), which hosts' heartbeats are written with; SQLite is local."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            return cursor.fetchone()[0]
    return timezone.now()


class HostState(models.TextChoices):
    ALIVE = "alive", "Alive"
    DRAINING = "draining", "Draining"
    LOST = "lost", "Lost"


class Host(models.Model):
    """A bots worker's machine: kept alive by its worker's heartbeat (bots.lifecycle.hosts).

    last_seen is written with the database's clock, so hosts' clocks never matter. Its state is
    derived: lost once silent past HOST_LEASE_SECONDS (or marked lost and not rejoined since),
    else draining if asked, else alive.
    """

    name = models.CharField(max_length=255, unique=True, help_text="DEIA_HOSTNAME of its bots worker")
    address = models.CharField(max_length=255, blank=True, help_text="Where its bots are reached (BOT_ADVERTISE_HOST)")
    last_seen = models.DateTimeField(help_text="Its worker's last heartbeat (database clock)")
    capacity = models.PositiveIntegerField(default=0, help_text="Most bots placed here (HOST_MAX_BOTS)")
    draining = models.BooleanField(default=False)
    draining_since = models.DateTimeField(null=True, blank=True)
    labels = models.CharField(max_length=500, blank=True, help_text="Comma-separated (HOST_LABELS)")
    version = models.CharField(max_length=100, blank=True)
    # Set by the reconcile that declared it lost; cleared when its worker rejoins (after fencing).
    lost_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "bots_host"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def label_set(self) -> set[str]:
        return {label.strip() for label in self.labels.split(",") if label.strip()}

    def state_at(self, now, lease_seconds: float) -> HostState:
        """The derived state at `now` (the database's clock: bots.lifecycle.hosts.db_now())."""
        if self.lost_at is not None or now - self.last_seen > timedelta(seconds=lease_seconds):
            return HostState.LOST
        return HostState.DRAINING if self.draining else HostState.ALIVE

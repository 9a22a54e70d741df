"""API tokens, stored as a SHA-256 digest with a short visible prefix.

Our own small model rather than django-rest-knox: knox records no last use, keeps its
prefix and digest formats to itself (so migrating DRF's existing 40-hex keys would
depend on its internals), and brings login/logout views we do not serve. Here a key is
40 random hex characters, as DRF's were, so existing "Authorization: Token <key>"
clients keep working after the migration hashes their keys (0002_hash_drf_tokens).

A key has 160 random bits, so one SHA-256 is enough: a slow password hash would only
slow every request down. Lookup is one indexed query by prefix, then a constant-time
compare of digests.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

KEY_BYTES = 20  # 40 hex characters, the shape of DRF's keys
PREFIX_LENGTH = 8
# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str:
    return key[:PREFIX_LENGTH]


class ApiTokenQuerySet(models.QuerySet):
    def issue(self, user, *, name: str = "", expires_at: datetime | None = None) -> tuple[ApiToken, str]:
        """A new token and its key; the key exists only in the return value."""
        key = secrets.token_hex(KEY_BYTES)
        token = self.create(user=user, name=name, prefix=prefix_of(key), digest=digest(key), expires_at=expires_at)
        return token, key

    def matching(self, key: str) -> ApiToken | None:
        """The token whose key this is (revoked and expired included), or None."""
        wanted = digest(key)
        # Served by the prefix index; a prefix is shared by more than one token only by chance.
        for token in self.select_related("user").filter(prefix=prefix_of(key)):
            if secrets.compare_digest(token.digest, wanted):
                return token
        return None


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What uses it, e.g. ci-deploy")
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False, db_index=True)  # lookup by prefix
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        db_table = "api_tokens"
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        # Never the key: this is what the admin, the audit log and log lines show.
        return f"token {self.prefix} of {self.user.get_username()}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired() else "active"

    def revoke(self) -> bool:
        """Revoke now; False if it already was (someone else won)."""
        now = timezone.now()
        won = ApiToken.objects.filter(pk=self.pk, revoked_at=None).update(revoked_at=now)
        if won:
            self.revoked_at = now
        return bool(won)

    def touch(self, now: datetime | None = None) -> None:
        """Record a use, writing at most once per LAST_USED_RESOLUTION."""
        now = now or timezone.now()
        if self.last_used_at is not None and now - self.last_used_at < LAST_USED_RESOLUTION:
            return
        stale = models.Q(last_used_at=None) | models.Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ApiToken.objects.filter(stale, pk=self.pk).update(last_used_at=now)
        self.last_used_at = now

"""Idempotent first-run setup: folders, migrations, static files, admin user, demo bot."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from bots.models import Backend, Bot, DesiredState
from deia.audit import audit
from deia.audit_actions import Action
from deia.config import public_files
from ops.schedules import install as install_schedules


def ensure_folders() -> None:
    for folder in (
        settings.VAR_DIR,
        settings.BROKER_DIR / "queue",
        settings.BROKER_DIR / "control",
        settings.BACKUP_DIR,
        settings.LOG_DIR,
    ):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def check_admin_password() -> None:
    """DEIA_ADMIN_PASSWORD must pass AUTH_PASSWORD_VALIDATORS, as a password set in the admin does."""
    password = settings.DEIA_ADMIN_PASSWORD
    if password is None:
        return
    User = get_user_model()
    try:
        validate_password(password, User(username=settings.DEIA_ADMIN_USER))
    except ValidationError as exc:
        raise CommandError(f"DEIA_ADMIN_PASSWORD refused: {' '.join(exc.messages)}", returncode=2) from None


def ensure_admin() -> tuple[bool, str | None]:
    """Create the admin once. Returns (created, generated password or None)."""
    User = get_user_model()
    username = settings.DEIA_ADMIN_USER
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            return False, None
        generated = None
        password = settings.DEIA_ADMIN_PASSWORD
        if password is None:
            password = generated = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        audit("auth.user.create", actor="setup", target=username, details={"superuser": True, "user_id": user.pk})
    return True, generated


def ensure_demo_bot() -> bool:
    with transaction.atomic():
        bot, created = Bot.objects.get_or_create(
            slug="demo",
            defaults={
                "name": "Demo bot",
                "backend": Backend.ECHO,
                "model_name": "echo",
                "system_prompt": "You are the DEIA demo bot. You repeat what you are told.",
                "desired_state": DesiredState.RUNNING,
            },
        )
        if created:
            audit(Action.BOT_CREATE, actor="setup", target=bot.slug, details={"backend": bot.backend})
    return created


class Command(BaseCommand):
    help = "Prepare this installation: folders, migrations, static files, admin user, demo bot. Safe to re-run."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="do not create the demo bot")

    def handle(self, *args, no_demo: bool = False, **options) -> None:
        # Before anything is created: a refused password leaves the installation as it was.
        check_admin_password()
        ensure_folders()
        call_command("migrate", interactive=False, verbosity=0)
        with public_files():
            call_command("collectstatic", interactive=False, verbosity=0)
        created, generated = ensure_admin()
        demo = False if no_demo else ensure_demo_bot()
        install_schedules()
        if generated:
            self.stdout.write(
                f"admin user '{settings.DEIA_ADMIN_USER}' created with password: {generated}  (shown once)"
            )
        self.stdout.write(
            f"setup ok: database migrated, admin '{settings.DEIA_ADMIN_USER}' "
            f"{'created' if created else 'present'}, "
            f"demo bot {'created' if demo else 'present' if not no_demo else 'skipped'}"
        )

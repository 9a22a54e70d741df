from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.utils import timezone

from deia.apitokens.models import ApiToken
from deia.apitokens.tokens import create_token, revoke_token
from ops.maintenance.command import OpsCommand, cli_actor


class Command(OpsCommand):
    help = (
        "API tokens: `create USER [--expires-days N] [--name NAME]` prints the new key once; "
        "`list [USER]`; `revoke PREFIX`."
    )

    def add_arguments(self, parser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True, parser_class=type(parser))
        create = verbs.add_parser("create", help="make a token and print its key (shown only this once)")
        create.add_argument("user")
        create.add_argument("--expires-days", type=int, default=None)
        create.add_argument("--name", default="")
        listing = verbs.add_parser("list", help="one line per token: prefix, user, state, dates")
        listing.add_argument("user", nargs="?")
        revoke = verbs.add_parser("revoke", help="revoke the token with this prefix")
        revoke.add_argument("prefix")

    def handle(self, *args, verb: str, **options) -> None:
        getattr(self, f"do_{verb}")(**options)

    def do_create(self, *, user: str, expires_days: int | None, name: str, **_) -> None:
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"no user {user!r}")
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        _, key = create_token(owner, name=name, expires_at=expires_at, actor=cli_actor())
        # The key alone on stdout, so that `KEY=$(manage.py apitoken create ci)` works.
        self.stdout.write(key)

    def do_list(self, *, user: str | None, **_) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("user__username", "-created_at")
        if user:
            tokens = tokens.filter(user__username=user)
        for token in tokens:
            dates = (token.created_at, token.expires_at, token.last_used_at)
            created, expires, used = (f"{d:%Y-%m-%d %H:%M}" if d else "-" for d in dates)
            self.stdout.write(
                f"{token.prefix} {token.user.get_username()} {token.state} "
                f"created {created} expires {expires} last used {used} {token.name}".rstrip()
            )

    def do_revoke(self, *, prefix: str, **_) -> None:
        tokens = list(ApiToken.objects.select_related("user").filter(prefix=prefix, revoked_at=None))
        if len(tokens) != 1:
            raise CommandError(f"{len(tokens)} unrevoked tokens have prefix {prefix!r}; expected one")
        revoke_token(tokens[0], actor=cli_actor())
        self.stdout.write(f"revoked {tokens[0]}")

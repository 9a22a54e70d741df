"""Granting permissions by their dotted names ("bots.operate_bot"), as the code checks them."""

from __future__ import annotations

from django.contrib.auth.models import Permission


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def grant(user_or_group, *names: str) -> None:
    """Give a user (or a group) these permissions; a user object forgets its cached ones."""
    target = user_or_group.user_permissions if hasattr(user_or_group, "user_permissions") else user_or_group.permissions
    target.add(*(permission(name) for name in names))
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache", "_deia_all_permissions"):
        user_or_group.__dict__.pop(cache, None)

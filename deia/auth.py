"""Authentication backend: Django's ModelBackend, with a user's permissions read in one query.

ModelBackend reads a user's own permissions and their groups' permissions in two queries;
every API request that checks a permission pays them. This reads both in one and caches
the set on the user object for the request, as ModelBackend does. Everything else
(authentication, is_active, superusers) is ModelBackend's.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db.models import Q

CACHE_ATTRIBUTE = "_deia_all_permissions"


class OneQueryModelBackend(ModelBackend):
    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        cached = getattr(user_obj, CACHE_ATTRIBUTE, None)
        if cached is None:
            permissions = Permission.objects.all()
            if not user_obj.is_superuser:
                permissions = permissions.filter(Q(user=user_obj) | Q(group__user=user_obj))
            rows = permissions.values_list("content_type__app_label", "codename").distinct()
            cached = {f"{app_label}.{codename}" for app_label, codename in rows}
            setattr(user_obj, CACHE_ATTRIBUTE, cached)
        return cached

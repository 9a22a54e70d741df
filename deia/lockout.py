"""django-axes' lockout check as the first authentication backend."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LockoutBackend(AxesStandaloneBackend):
    """Refuses sign-ins from locked-out user names and addresses.

    Without a request (a test client's login(), code calling authenticate() directly)
    there is no address to count against, and axes would raise; such calls pass on to
    the next backend instead. Every sign-in over HTTP carries its request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

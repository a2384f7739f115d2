"""
HTTP Basic authentication for the API that says "too many attempts" while a password
guesser is locked out.

The lock-out itself is django-axes' (its backend refuses every login of a locked-out
username or address, and flags the request). Django's `authenticate()` turns that
refusal into a plain failure, which DRF would answer with 401 as if the password
were merely wrong; this answers 429 with a Retry-After instead, as the admin login
does. Without django-axes it is DRF's `BasicAuthentication`.

The request's body is read before the password is tried. django-axes reads it
(`request.POST`, which DRF parses) when it records a failed login, and a body DRF
cannot parse would raise there, after the password was checked and before the
failure was counted: a guesser sending such bodies would never be locked out, and
a read would tell a right password (200) from a wrong one (400). A body the API
cannot read is refused (400, 415) before any password is tried.
"""

from __future__ import annotations

from typing import Any

from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request


class BasicAuthentication(authentication.BasicAuthentication):
    """DRF's Basic authentication; 429 for a login django-axes has locked out."""

    def authenticate_credentials(
        self, userid: str, password: str, request: Request | None = None
    ) -> tuple[Any, None]:
        # Credentials are any bytes the client sends: PostgreSQL refuses a NUL byte in
        # the user and login-attempt lookups (DataError, a 500 for anyone). No user holds one.
        if "\x00" in userid or "\x00" in password:
            raise AuthenticationFailed("Invalid username/password.")
        if request is not None:
            request.data  # noqa: B018 - 400 or 415 for an unreadable body, before the password
        try:
            return super().authenticate_credentials(userid, password, request)
        except AuthenticationFailed:
            if getattr(request, "axes_locked_out", False):
                raise Throttled(
                    wait=_cool_off_seconds(request),
                    detail="Too many failed logins: try again later.",
                ) from None
            raise


def _cool_off_seconds(request: Request | None) -> float | None:
    from axes.helpers import get_cool_off  # only reached when django-axes flagged the request

    cool_off = get_cool_off(request)
    return cool_off.total_seconds() if cool_off is not None else None

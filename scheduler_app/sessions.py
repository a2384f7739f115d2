"""
Django's database session store, refusing session keys no session can have.

A cookie is whatever the client sends: a session key holding a NUL byte reaches
the session lookup, and PostgreSQL answers it with `DataError` (a 500 on every page
and endpoint, without an account). Django's keys are 32 lowercase ASCII letters and
digits; any other key is treated as no session, as an unknown key already is.
Enable it with `SESSION_ENGINE = "scheduler_app.sessions"`.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db


class SessionStore(db.SessionStore):
    """`django.contrib.sessions.backends.db.SessionStore` that ignores impossible keys."""

    def _validate_session_key(self, key: str | None) -> bool:
        return bool(super()._validate_session_key(key) and key.isascii() and key.isalnum())

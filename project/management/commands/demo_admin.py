"""`manage.py demo_admin`: create (or reset) the demo superuser and print its login."""

import secrets
from typing import Any

from axes.utils import reset as reset_lockouts
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create or reset the 'admin' superuser with a new random password (and no login "
        "lock-out) and print it."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        # A lock-out from wrong passwords of an earlier run must not outlive the reset.
        reset_lockouts(username="admin")
        self.stdout.write(f"Admin login: user 'admin', password '{password}'")

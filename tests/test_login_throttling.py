"""A password guesser is locked out for a while, at the admin login form and at the API's
HTTP Basic authentication, the right password included (django-axes)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

PASSWORD = "the-right-password"
JOBS = "/api/scheduler/jobs/"


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_superuser("admin", "admin@example.com", PASSWORD)


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def api_get(username: str, password: str, *, address: str = "192.0.2.10") -> object:
    return Client(REMOTE_ADDR=address).get(JOBS, **basic(username, password))


def admin_login(client: Client, password: str) -> object:
    return client.post("/admin/login/?next=/admin/", {"username": "admin", "password": password})


def test_api_answers_429_after_a_burst_of_wrong_passwords_even_for_the_right_one(admin_user):
    assert api_get("admin", PASSWORD).status_code == 200
    answers = [api_get("admin", f"guess-{i}").status_code
               for i in range(settings.AXES_FAILURE_LIMIT)]

    assert answers[:-1] == [401] * (settings.AXES_FAILURE_LIMIT - 1)
    assert answers[-1] == 429
    locked = api_get("admin", PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["detail"].startswith("Too many failed logins: try again later.")
    assert int(locked["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()


def test_the_account_is_locked_from_other_addresses_and_the_address_for_other_accounts(
    admin_user,
):
    User.objects.create_superuser("other", "other@example.com", PASSWORD)
    for i in range(settings.AXES_FAILURE_LIMIT):
        api_get("admin", f"guess-{i}", address="192.0.2.10")

    assert api_get("admin", PASSWORD, address="198.51.100.7").status_code == 429
    assert api_get("other", PASSWORD, address="192.0.2.10").status_code == 429
    assert api_get("other", PASSWORD, address="198.51.100.7").status_code == 200


def test_the_lock_out_ends_after_the_cool_off_time(admin_user):
    for i in range(settings.AXES_FAILURE_LIMIT):
        api_get("admin", f"guess-{i}")
    assert api_get("admin", PASSWORD).status_code == 429

    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time
        - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    assert api_get("admin", PASSWORD).status_code == 200


def test_admin_login_form_locks_a_guesser_out(admin_user):
    client = Client(REMOTE_ADDR="192.0.2.10")
    answers = [admin_login(client, f"guess-{i}").status_code
               for i in range(settings.AXES_FAILURE_LIMIT)]

    assert answers[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again
    assert answers[-1] == 429
    response = admin_login(client, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_a_correct_admin_login_still_works_for_someone_else(admin_user):
    guesser = Client(REMOTE_ADDR="192.0.2.10")
    User.objects.create_superuser("colleague", "c@example.com", PASSWORD)
    for i in range(settings.AXES_FAILURE_LIMIT):
        admin_login(guesser, f"guess-{i}")

    colleague = Client(REMOTE_ADDR="198.51.100.7")
    response = colleague.post(
        "/admin/login/?next=/admin/", {"username": "colleague", "password": PASSWORD}
    )

    assert response.status_code == 302 and response["Location"] == "/admin/"



@pytest.mark.parametrize(
    ("method", "content_type", "body", "status"),
    [
        ("GET", "application/json", "{", 400),
        ("POST", "application/json", '{"reason": ', 400),
        ("POST", "text/plain", "guess", 415),
        ("GET", "multipart/form-data", "--x--", 415),
    ],
)
def test_a_body_the_api_cannot_read_is_refused_before_any_password_is_tried(
    admin_user, method, content_type, body, status
):
    # django-axes reads the body when it records a failed login. Were the password tried
    # first, such a body would stop the count there: no lock-out ever, and a GET would
    # tell the right password (200) from a wrong one (400).
    guesser = Client(REMOTE_ADDR="192.0.2.10")
    path = f"{JOBS}reports.weekly/pause/" if method == "POST" else JOBS
    passwords = [f"guess-{i}" for i in range(settings.AXES_FAILURE_LIMIT + 1)] + [PASSWORD]

    answers = [
        guesser.generic(method, path, body, content_type=content_type,
                        **basic("admin", password)).status_code
        for password in passwords
    ]

    assert answers == [status] * len(passwords)
    assert not AccessAttempt.objects.exists()  # no password was tried
    assert api_get("admin", PASSWORD).status_code == 200

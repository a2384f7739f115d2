"""Bytes no client should send (NUL, undecodable) get a 4xx, never a 500.

PostgreSQL refuses a NUL byte in any text it is asked to compare ("A string literal
cannot contain NUL"): every value that could reach a query is checked before it does.
"""

from __future__ import annotations

import base64

import pytest
from django.conf import settings
from django.test import Client

from tests.test_api import API, JOB_URL, PASSWORD, make_user

NUL_CREDENTIALS = [b"a\x00b:pw", b"staff_change:pass\x00word", b"\xff\xfe:pw", b"\x00"]


def basic_bytes(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


@pytest.mark.parametrize("credentials", NUL_CREDENTIALS)
@pytest.mark.parametrize("path", [f"{API}/jobs/", f"{JOB_URL}/", f"{API}/status/"])
def test_basic_credentials_holding_any_bytes_are_a_401(synced, credentials, path):
    make_user("staff_change")

    response = Client().get(path, HTTP_AUTHORIZATION=basic_bytes(credentials))

    assert response.status_code == 401, response.content[:300]
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_a_session_cookie_holding_a_nul_byte_is_no_session(synced):
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = "abcdefgh\x00ijkl"

    assert client.get(f"{API}/jobs/").status_code == 401
    assert client.get("/admin/").status_code == 302  # to the login page


@pytest.mark.parametrize(
    "query", ["search=a%00b", "trigger=%00", "ordering=id%00", "page=1%00", "page_size=%00"]
)
def test_job_list_query_parameters_holding_a_nul_byte_are_a_400(synced, query):
    client = Client(HTTP_AUTHORIZATION=basic_bytes(f"staff_change:{PASSWORD}".encode()))
    make_user("staff_change")

    response = client.get(f"{API}/jobs/?{query}")

    assert response.status_code in (400, 404), response.content[:300]


@pytest.mark.parametrize(
    "path", [f"{API}/jobs/a%00b/", f"{API}/jobs/a%00b/executions/", f"{API}/executions/?job=a%00b",
             f"{API}/changes/?job=a%00b"]
)
def test_a_nul_byte_in_a_job_id_is_a_4xx(synced, path):
    make_user("staff_change")
    client = Client(HTTP_AUTHORIZATION=basic_bytes(f"staff_change:{PASSWORD}".encode()))

    response = client.get(path)

    assert response.status_code in (400, 404), response.content[:300]


def test_an_if_match_holding_a_nul_byte_is_a_400_and_changes_nothing(synced):
    make_user("staff_change")
    client = Client(HTTP_AUTHORIZATION=basic_bytes(f"staff_change:{PASSWORD}".encode()))

    response = client.post(f"{JOB_URL}/pause/", "{}", content_type="application/json",
                           HTTP_IF_MATCH='"1\x00"')

    assert response.status_code == 400
    assert "If-Match" in response.json()["errors"]



@pytest.mark.parametrize("control", ["pause", "run", "policy"])
def test_the_admins_job_controls_answer_a_nul_byte_job_id_without_a_server_error(synced, control):
    from django.contrib.auth.models import User
    from django.urls import reverse

    client = Client()
    client.force_login(User.objects.create_superuser("root", password="x"))

    response = client.post(reverse(f"admin:scheduler_app_job_{control}", args=["a\x00b"]),
                           {"version": 1})

    assert response.status_code in (302, 404)

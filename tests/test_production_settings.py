"""The demo project's production settings, read from the environment as deploy/README.md
documents them: the secret-key refusal, DEBUG off by default, `check --deploy` clean."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def manage(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """`manage.py` of the demo project with only the given DJANGO_* variables set."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DJANGO_") and key != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "project.settings", **environment},
        capture_output=True, text=True, timeout=120,
    )


def production_environment(tmp_path) -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "scheduler.example.com",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://scheduler.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'production.sqlite3'}",
        "DJANGO_SECURE": "1",
    }


def test_without_a_secret_key_and_debug_off_it_refuses_to_start_with_one_line():
    result = manage("check")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "DJANGO_SECRET_KEY is not set: set it (or DJANGO_DEBUG=1 for development)."
    ]


def test_debug_is_off_unless_set_to_1(tmp_path):
    show_debug = ("shell", "--verbosity", "0", "-c",
                  "from django.conf import settings; print(settings.DEBUG)")
    environment = production_environment(tmp_path)

    assert manage(*show_debug, **environment).stdout.split() == ["False"]
    assert manage(*show_debug, **environment, DJANGO_DEBUG="yes").stdout.split() == ["False"]
    assert manage(*show_debug, **environment, DJANGO_DEBUG="1").stdout.split() == ["True"]


def test_check_deploy_is_clean_in_the_documented_production_environment(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING",
                    **production_environment(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_names_what_is_missing_without_https_settings(tmp_path):
    environment = production_environment(tmp_path)
    del environment["DJANGO_SECURE"]

    result = manage("check", "--deploy", **environment)

    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_database_connections_are_reused_with_a_health_check(tmp_path):
    show = ("shell", "--verbosity", "0", "-c",
            "from django.conf import settings; d = settings.DATABASES['default']; "
            "print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])")
    environment = production_environment(tmp_path)

    assert manage(*show, **environment).stdout.split() == ["60", "True"]
    assert manage(*show, **environment, DJANGO_CONN_MAX_AGE="0").stdout.split() == ["0", "True"]

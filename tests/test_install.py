"""The app in a project made by `django-admin startproject`, set up by the README's steps:
what `check` says when a piece is missing, and the API without drf-spectacular."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

# The README's "Add it to your project" steps, applied to a fresh project.
INSTALLED_APPS_ENTRIES = ('"rest_framework"', '"django_apscheduler"', '"scheduler_app"')
URL_IMPORT = "from django.urls import include, path"
URL_LINE = 'path("api/scheduler/", include("scheduler_app.api.urls"))'


def start_project(
    directory: Path, *, apps: tuple[str, ...] = INSTALLED_APPS_ENTRIES, url_line: bool = True
) -> Path:
    """`django-admin startproject mysite` in `directory`, with the README's steps applied."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(directory)],
        check=True, capture_output=True,
    )
    settings = directory / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text() + f"\nINSTALLED_APPS += [{', '.join(apps)}]\n"
    )
    if url_line:
        urls = directory / "mysite" / "urls.py"
        urls.write_text(f"{urls.read_text()}\n{URL_IMPORT}\n\nurlpatterns += [{URL_LINE}]\n")
    return directory


def run_in_project(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command of the project's manage.py, with this repository's scheduler_app importable."""
    environment = {
        key: value for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")
    }
    environment["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        [sys.executable, *args], cwd=project, env={**environment, **(env or {})},
        capture_output=True, text=True, timeout=120,
    )


def test_readme_shows_the_steps_these_tests_apply():
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("## Add it to your project"):]
    for entry in INSTALLED_APPS_ENTRIES:
        assert f"    {entry}," in section
    assert URL_LINE in section


def test_check_passes_in_a_fresh_project_with_the_readme_steps(tmp_path):
    result = run_in_project(start_project(tmp_path), "manage.py", "check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_fails_naming_a_missing_django_apscheduler(tmp_path):
    project = start_project(tmp_path, apps=('"rest_framework"', '"scheduler_app"'))

    result = run_in_project(project, "manage.py", "check")

    assert result.returncode != 0
    assert 'scheduler_app needs "django_apscheduler" in INSTALLED_APPS' in result.stderr


def test_check_fails_naming_a_missing_rest_framework(tmp_path):
    project = start_project(tmp_path, apps=('"django_apscheduler"', '"scheduler_app"'))

    result = run_in_project(project, "manage.py", "check")

    assert result.returncode != 0
    assert "scheduler_app.E010" in result.stderr
    assert 'scheduler_app needs "rest_framework" in INSTALLED_APPS' in result.stderr


def test_check_warns_with_the_url_line_when_the_api_is_not_routed(tmp_path):
    result = run_in_project(start_project(tmp_path, url_line=False), "manage.py", "check")

    assert result.returncode == 0
    assert "scheduler_app.W001" in result.stderr and URL_LINE in result.stderr


def test_any_order_of_the_three_apps_gives_the_schedulers_admin(tmp_path):
    project = start_project(tmp_path, apps=tuple(reversed(INSTALLED_APPS_ENTRIES)))

    result = run_in_project(
        project, "manage.py", "shell", "--verbosity", "0", "-c",
        "from django.contrib import admin; from scheduler_app.models import Job, Run; "
        "print(admin.site.is_registered(Job), admin.site.is_registered(Run))",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


# Run in the fresh project: migrate, a superuser, the API's job list and its root, with
# drf_spectacular made unimportable before Django starts.
API_WITHOUT_SPECTACULAR = """
import sys
sys.modules["drf_spectacular"] = None
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
from scheduler_app import services
services.sync_jobs_from_code()
User.objects.create_superuser("admin", password="pw")
client = Client()
client.force_login(User.objects.get())
print(client.get("/api/scheduler/jobs/").status_code, client.get("/api/scheduler/").status_code)
"""


def test_the_api_works_without_drf_spectacular(tmp_path):
    project = start_project(tmp_path)

    result = run_in_project(
        project, "-c", API_WITHOUT_SPECTACULAR,
        env={"DJANGO_SETTINGS_MODULE": "mysite.settings",
             "PYTHONPATH": f"{project}:{PROJECT_ROOT}"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "200"]
    assert "drf_spectacular" not in (project / "mysite" / "settings.py").read_text()


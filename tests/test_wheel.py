"""The wheel, as a new user gets it: built with `python -m build`, installed into a fresh
virtualenv, added to a `django-admin startproject` site by the README's steps, run with
`runscheduler` and gunicorn (DEBUG off, whitenoise for static files).

Slow (a build, a virtualenv, two servers) and the same on every database and Python, so
it runs in one of the four runs of `./scripts/test` only: SQLite on Python 3.11.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import PROJECT_ROOT
from tests.test_install import INSTALLED_APPS_ENTRIES, URL_IMPORT, URL_LINE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        connection.vendor != "sqlite" or sys.version_info[:2] != (3, 11),
        reason="runs once per ./scripts/test: in the SQLite run on Python 3.11",
    ),
]

JOBS_PY = '''\
from pathlib import Path

from scheduler_app import scheduled_job


@scheduled_job("interval", seconds=1, id="reports.tick", name="Tick")
def tick():
    with open(Path(__file__).with_name("ticks.txt"), "a") as ticks:
        ticks.write("tick\\n")
'''

# What deploy/README.md says a project adds for production static files.
PRODUCTION_SETTINGS = '''
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
STATIC_ROOT = BASE_DIR / "static"
MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
'''


# The admin's job list, as a signed-in superuser sees it.
ADMIN_JOBS_PAGE = (
    "from django.test.utils import setup_test_environment; setup_test_environment(); "
    "from django.contrib.auth.models import User; from django.test import Client; "
    "client = Client(); client.force_login(User.objects.get(username='admin')); "
    "page = client.get('/admin/scheduler_app/job/'); "
    "print(page.status_code, 'reports.tick' in page.content.decode())"
)


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def build_wheel(work: Path) -> Path:
    """`python -m build --wheel` on a copy of what the distribution is made of."""
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    shutil.copytree(PROJECT_ROOT / "scheduler_app", source / "scheduler_app",
                    ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "build", "--wheel", "--outdir", work / "dist", source, cwd=work)
    [wheel] = (work / "dist").glob("django_scheduler_app-*.whl")
    return wheel


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, *, auth: tuple[str, str] | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(":".join(auth).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def wait_for(condition, *, timeout: float, what: str, processes: list) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"{process.args} exited:\n{process.stdout.read()}"
        try:
            if condition():
                return
        except OSError:
            pass  # the server is not listening yet
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s")


def test_the_wheel_installs_into_a_fresh_project_and_runs_there(tmp_path):
    wheel = build_wheel(tmp_path)
    packaged = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert packaged == {"scheduler_app", wheel.name.split("-")[0] + "-" +
                        wheel.name.split("-")[1] + ".dist-info"}
    assert "scheduler_app/templates/admin/scheduler_app/job_change.html" in (
        zipfile.ZipFile(wheel).namelist()
    )

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel, "gunicorn", "whitenoise", cwd=tmp_path)

    site = tmp_path / "site"
    site.mkdir()
    run(venv / "bin" / "django-admin", "startproject", "mysite", site, cwd=tmp_path)
    run(python, "manage.py", "startapp", "reports", cwd=site)
    (site / "reports" / "jobs.py").write_text(JOBS_PY)
    settings = site / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text()
        + f"\nINSTALLED_APPS += [{', '.join(INSTALLED_APPS_ENTRIES)}, \"reports\"]\n"
        + PRODUCTION_SETTINGS
    )
    urls = site / "mysite" / "urls.py"
    urls.write_text(f"{urls.read_text()}\n{URL_IMPORT}\n\nurlpatterns += [{URL_LINE}]\n")

    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "DJANGO_SUPERUSER_PASSWORD": "wheel-pw-42"}
    run(python, "manage.py", "check", cwd=site, env=env)
    run(python, "manage.py", "migrate", "--noinput", cwd=site, env=env)
    run(python, "manage.py", "collectstatic", "--noinput", cwd=site, env=env)
    run(python, "manage.py", "createsuperuser", "--noinput", "--username", "admin",
        "--email", "admin@example.com", cwd=site, env=env)

    port = free_port()
    processes = [
        subprocess.Popen([python, "manage.py", "runscheduler"], cwd=site, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
        subprocess.Popen([venv / "bin" / "gunicorn", "mysite.wsgi", "--workers", "2",
                          "--bind", f"127.0.0.1:{port}"], cwd=site, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
    ]
    base = f"http://127.0.0.1:{port}"
    ticks = site / "reports" / "ticks.txt"
    try:
        wait_for(lambda: ticks.exists() and len(ticks.read_text().split()) >= 2, timeout=60,
                 what="the one-second job did not run twice", processes=processes)
        wait_for(lambda: get(f"{base}/static/admin/css/base.css")[0] == 200, timeout=60,
                 what="gunicorn did not answer", processes=processes)

        status, content_type, body = get(f"{base}/static/admin/css/base.css")
        assert content_type.startswith("text/css") and b"body" in body
        status, _, body = get(f"{base}/api/scheduler/jobs/", auth=("admin", "wheel-pw-42"))
        assert status == 200
        [job] = json.loads(body)["results"]
        assert (job["id"], job["state"], job["last_execution"]["status"]) == (
            "reports.tick", "scheduled", "success"
        )
        assert get(f"{base}/api/scheduler/jobs/")[0] == 403  # Django's default settings
        assert "reports.tick" in run(python, "manage.py", "scheduler", "list", cwd=site, env=env)
        admin_page = run(python, "manage.py", "shell", "--verbosity", "0", "-c",
                         ADMIN_JOBS_PAGE, cwd=site, env=env)
        assert admin_page.split() == ["200", "True"]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)

"""
The scheduler in Django's admin: jobs, their executions, the audit trail, the alert log,
a dashboard.

This replaces django-apscheduler's own registrations, which let a user edit
`next_run_time` without the pickled state (the scheduler then spins), run jobs inside
the web request, and show neither the trigger nor the paused state. Here every change
goes through `scheduler_app.services` with source "admin", every read through
`selectors` (and `dashboard` for the dashboard page), and the raw job state is never
editable. Permissions are the API's: viewing needs `django_apscheduler.view_djangojob`,
changing needs `django_apscheduler.change_djangojob`; nobody adds or deletes jobs here.

The pages live in `jobs` (the job list, change page and its endpoints), `dashboard`,
`history` (executions, the audit trail and the alert log); what they share is in `base`,
`display`, `filters` and `operations`. This module only registers them.
"""

from __future__ import annotations

# django-apscheduler's registrations are made here, whatever the order of
# INSTALLED_APPS, so that they can be taken back: the admin's autodiscovery will
# not import that module a second time.
import django_apscheduler.admin  # noqa: F401 - registers django-apscheduler's pages
from django.contrib import admin
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app.admin.history import AlertAdmin, ExecutionAdmin, JobChangeAdmin
from scheduler_app.admin.jobs import JobAdmin
from scheduler_app.models import Alert, Job, JobChange, Run

__all__ = ["AlertAdmin", "ExecutionAdmin", "JobAdmin", "JobChangeAdmin"]

for _model in (DjangoJob, DjangoJobExecution):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)

# The admin index links to the dashboard. An app's admin/index.html cannot override
# django.contrib.admin's (which comes first in INSTALLED_APPS), so name ours on the site,
# unless the project already chose an index template of its own.
if admin.site.index_template is None:
    admin.site.index_template = "admin/scheduler_app/index.html"

# Under this app's name ("Scheduler": Jobs, Runs, Changes), through proxy models of
# django-apscheduler's tables.
admin.site.register(Job, JobAdmin)
admin.site.register(Run, ExecutionAdmin)
admin.site.register(JobChange, JobChangeAdmin)
admin.site.register(Alert, AlertAdmin)

"""
The scheduler in Django's admin: jobs, their executions, the audit trail, a dashboard.

This replaces django-apscheduler's own registrations, which let a user edit
`next_run_time` without the pickled state (the scheduler then spins), run jobs inside
the web request, and show neither the trigger nor the paused state. Here every change
goes through `scheduler_app.services` with source "admin", every read through
`selectors` (and `dashboard` for the dashboard page), and the raw job state is never
editable. Permissions are the API's: viewing needs `django_apscheduler.view_djangojob`,
changing needs `django_apscheduler.change_djangojob`; nobody adds or deletes jobs here.

The pages live in `jobs` (the job list, change page and its endpoints), `dashboard`,
`history` (executions and the audit trail); what they share is in `base`, `display`,
`filters` and `operations`. This module only registers them.
"""

from __future__ import annotations

from django.contrib import admin
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app.admin.history import ExecutionAdmin, JobChangeAdmin
from scheduler_app.admin.jobs import JobAdmin
from scheduler_app.models import JobChange

__all__ = ["ExecutionAdmin", "JobAdmin", "JobChangeAdmin"]

# django-apscheduler's admin.py is imported first (its app comes first in
# INSTALLED_APPS); take its registrations back before making ours.
for _model in (DjangoJob, DjangoJobExecution):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)

# The admin index links to the dashboard. An app's admin/index.html cannot override
# django.contrib.admin's (which comes first in INSTALLED_APPS), so name ours on the site,
# unless the project already chose an index template of its own.
if admin.site.index_template is None:
    admin.site.index_template = "admin/scheduler_app/index.html"

admin.site.register(DjangoJob, JobAdmin)
admin.site.register(DjangoJobExecution, ExecutionAdmin)
admin.site.register(JobChange, JobChangeAdmin)

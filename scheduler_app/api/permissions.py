"""
Who may use the scheduler API.

Only staff: reading needs django-apscheduler's view (or change) permission on
jobs, changing needs its change permission, creating a job its add permission and
deleting one its delete permission. Superusers may do everything. The
admin checks the same permissions the same way (Django's admin lets the change
permission read, too), so a user sees the same jobs through both doors.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

VIEW_JOBS = "django_apscheduler.view_djangojob"
CHANGE_JOBS = "django_apscheduler.change_djangojob"
ADD_JOBS = "django_apscheduler.add_djangojob"
DELETE_JOBS = "django_apscheduler.delete_djangojob"


class CanManageJobs(BasePermission):
    """Staff who may view jobs may read; staff who may change them may also write."""

    message = "Only staff users with permission on scheduler jobs may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if user.is_superuser:
            return True
        if not user.is_staff:
            return False
        if request.method in SAFE_METHODS:
            return user.has_perm(VIEW_JOBS) or user.has_perm(CHANGE_JOBS)
        action = getattr(view, "action", None)
        if action == "create":
            return user.has_perm(ADD_JOBS)
        if action == "destroy":
            return user.has_perm(DELETE_JOBS)
        return user.has_perm(CHANGE_JOBS)

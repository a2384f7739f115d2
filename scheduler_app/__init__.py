"""
scheduler_app: APScheduler jobs declared in code, changed safely while they run.

Declare a job in any installed app's `jobs.py`::

    from scheduler_app import scheduled_job

    @scheduled_job("cron", hour=3, minute=0, id="reports.nightly", name="Nightly report")
    def nightly_report(): ...
"""

from scheduler_app.registry import scheduled_job

__all__ = ["scheduled_job"]

"""
scheduler_app: APScheduler jobs declared in code, changed safely while they run.

Declare a job in any installed app's `jobs.py`::

    from scheduler_app import scheduled_job

    @scheduled_job("cron", hour=3, minute=0, id="reports.nightly", name="Nightly report")
    def nightly_report(): ...

or register a function that operators schedule at runtime, as often as they like,
each job with keyword arguments of its own::

    from scheduler_app import job_function

    @job_function("reports.customer_report")
    def customer_report(customer_id: int): ...
"""

from scheduler_app.registry import job_function, scheduled_job

__all__ = ["job_function", "scheduled_job"]

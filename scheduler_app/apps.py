"""App configuration: refuses to load without django-apscheduler, discovers every
installed app's `jobs.py` at startup."""

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

# Importing the checks registers them.
from scheduler_app.checks import missing_app_message


class SchedulerAppConfig(AppConfig):
    name = "scheduler_app"
    verbose_name = "Scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def import_models(self) -> None:
        # Our models extend django-apscheduler's: without its app they cannot even be
        # imported, and Django would fail with a RuntimeError about DjangoJob long
        # before any system check runs. Say what to add instead.
        if not self.apps.is_installed("django_apscheduler"):
            raise ImproperlyConfigured(missing_app_message("django_apscheduler"))
        super().import_models()

    def ready(self) -> None:
        autodiscover_modules("jobs")

"""A table the probe jobs write to, so tests see when and how often a job really ran."""

from django.db import models


class ProbeRun(models.Model):
    job_id = models.CharField(max_length=255)
    label = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField()
    pid = models.PositiveIntegerField(null=True, help_text="The process that ran the job.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.job_id} at {self.started_at}"


class BenchItem(models.Model):
    """A trivial row: the API benchmark's floor is a plain DRF ModelViewSet over it."""

    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

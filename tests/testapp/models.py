"""A table the probe jobs write to, so tests see when and how often a job really ran."""

from django.db import models


class ProbeRun(models.Model):
    job_id = models.CharField(max_length=255)
    label = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.job_id} at {self.started_at}"

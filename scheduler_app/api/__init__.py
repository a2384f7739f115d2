"""
The REST API of scheduler_app: every job operation over Django REST framework.

Mount `scheduler_app.api.urls` (the demo project mounts it at `/api/scheduler/`).
Views validate the request shape, call one service or selector and serialize the
result; `exceptions` maps the scheduler's errors to HTTP in one place.
"""

"""
The API's OpenAPI annotations, with drf-spectacular when it is installed.

drf-spectacular is optional (`pip install django-scheduler-app[openapi]`, then list
"drf_spectacular" in INSTALLED_APPS and route its views, see the README). Without it
the annotations here are inert and the API works the same, undescribed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from drf_spectacular.authentication import BasicScheme
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import (
        OpenApiExample,
        OpenApiParameter,
        OpenApiResponse,
        extend_schema,
        extend_schema_field,
    )

    class LockOutAwareBasicScheme(BasicScheme):
        """Our Basic authentication is HTTP Basic in the schema (subclassing an extension
        registers it)."""

        target_class = "scheduler_app.api.authentication.BasicAuthentication"

except ImportError:

    class _Inert:
        """Stands for a drf-spectacular annotation: takes anything, keeps nothing."""

        PATH = "path"
        HEADER = "header"
        STR = "string"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

    OpenApiTypes = OpenApiExample = OpenApiParameter = OpenApiResponse = _Inert  # type: ignore[misc]

    def extend_schema(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[no-redef]
        return lambda target: target

    extend_schema_field = extend_schema  # type: ignore[assignment]

__all__ = [
    "OpenApiExample",
    "OpenApiParameter",
    "OpenApiResponse",
    "OpenApiTypes",
    "extend_schema",
    "extend_schema_field",
]

"""Page sizes of the scheduler API's lists."""

from __future__ import annotations

from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from scheduler_app.api.exceptions import BadRequest
from scheduler_app.pagination import KeysFirstPaginator


class SchedulerPagination(PageNumberPagination):
    """`{"count", "next", "previous", "results"}`, 50 a page unless `page_size` says less."""

    django_paginator_class = KeysFirstPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    # DRF silently reads a malformed page or page_size as the default; say so instead.

    def get_page_size(self, request: Request) -> int:
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not _is_number(value) or int(value) < 1:
            raise BadRequest(
                f"must be a whole number from 1 to {self.max_page_size}.",
                field=self.page_size_query_param,
            )
        return min(int(value), self.max_page_size)

    def get_page_number(self, request: Request, paginator: Paginator) -> int | str:
        value = request.query_params.get(self.page_query_param)
        if value is None:
            return 1
        if value in self.last_page_strings:
            return paginator.num_pages
        if not _is_number(value):
            raise BadRequest("must be a page number, or 'last'.", field=self.page_query_param)
        # Out of range is DRF's 404 "Invalid page.".
        return value


def _is_number(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 18

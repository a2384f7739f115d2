"""
Pages of job rows that cost the same on the first page and the last.

A page of an ordered queryset is `LIMIT n OFFSET m`, and the database builds every
row it skips, joins and computed columns included: on PostgreSQL the newest-run
subquery of `selectors.job_queryset` ran for all 5,000 rows before page 100 of
10,000 jobs. `KeysFirstPaginator` picks the page's primary keys in a subquery that
needs only the ordering and the filters, and builds whole rows for those keys
alone, in the same statement, so a page is still read from one snapshot.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet


class KeysFirstPaginator(Paginator):
    """A `Paginator` whose page query builds whole rows only for the page it shows."""

    def _get_page(self, object_list: Any, number: int, paginator: Paginator) -> Page:
        # Django's documented hook, given the page's slice of `self.object_list`.
        if isinstance(object_list, QuerySet) and isinstance(self.object_list, QuerySet):
            object_list = self.object_list.filter(pk__in=object_list.values("pk"))
        return super()._get_page(object_list, number, paginator)

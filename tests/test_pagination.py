"""KeysFirstPaginator: the same pages as Django's Paginator, read another way."""

from __future__ import annotations

import pytest
from django.core.paginator import EmptyPage, Paginator

from scheduler_app import selectors, services
from scheduler_app.pagination import KeysFirstPaginator
from tests.test_selectors import add_generated_jobs


@pytest.mark.parametrize("filters", [
    {},
    {"ordering": "-id"},
    {"ordering": "next_run_time"},
    {"ordering": "-next_run_time"},
    {"enabled": True},
    {"search": "generated", "enabled": True, "ordering": "-id"},
])
def test_every_page_holds_the_rows_django_paginator_gives(synced, filters):
    add_generated_jobs(23)
    for job_id in ("generated.job_003", "generated.job_011", "generated.job_017"):
        services.pause_job(job_id=job_id, actor="a", source="api")  # ties on next_run_time

    expected = Paginator(selectors.job_queryset(**filters), 7)
    paginator = KeysFirstPaginator(selectors.job_queryset(**filters), 7)

    assert paginator.num_pages == expected.num_pages > 1
    for number in expected.page_range:
        page = paginator.page(number)
        assert [row.id for row in page] == [row.id for row in expected.page(number)]
        assert (page.has_next(), page.start_index()) == (
            expected.page(number).has_next(), expected.page(number).start_index()
        )
    with pytest.raises(EmptyPage):
        paginator.page(expected.num_pages + 1)


def test_rows_of_a_page_carry_their_job_view_columns(synced):
    add_generated_jobs(5)

    page = KeysFirstPaginator(selectors.job_queryset(), 3).page(2)
    views = selectors.job_views(page)

    assert [view.id for view in views] == [row.id for row in page]
    assert all(view.last_execution is not None and view.version >= 1 for view in views)


def test_a_list_of_rows_is_paged_as_django_pages_it():
    assert list(KeysFirstPaginator(list(range(10)), 4).page(3)) == [8, 9]

"""The project's ModelBackend answers every permission question as Django's does."""

from __future__ import annotations

import pytest
from django.contrib.auth import backends as django_backends
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from scheduler_app.auth_backends import ModelBackend

# A few permissions of different apps, so that app labels matter.
CODENAMES = [
    ("django_apscheduler", "view_djangojob"),
    ("django_apscheduler", "change_djangojob"),
    ("django_apscheduler", "view_djangojobexecution"),
    ("auth", "view_user"),
    ("auth", "change_group"),
]


def permission(index: int) -> Permission:
    app_label, codename = CODENAMES[index]
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def answers(backend: django_backends.ModelBackend, user_id: int) -> tuple:
    """Everything a backend says of a user, read from a fresh user object."""
    user = User.objects.get(pk=user_id)
    return (
        backend.get_all_permissions(user),
        {f"{app}.{codename}": backend.has_perm(user, f"{app}.{codename}")
         for app, codename in CODENAMES},
        backend.has_module_perms(user, "django_apscheduler"),
        backend.get_all_permissions(user, obj=object()),
    )


permission_sets = st.sets(st.integers(0, len(CODENAMES) - 1))


class SameAnswersAsDjango(TestCase):
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        own=permission_sets,
        group_permissions=st.lists(permission_sets, max_size=3),
        member_of=st.sets(st.integers(0, 2)),
        is_active=st.booleans(),
        is_superuser=st.booleans(),
    )
    def test_for_any_mix_of_own_and_group_permissions(
        self, own, group_permissions, member_of, is_active, is_superuser
    ):
        user = User.objects.create(username="someone", is_active=is_active,
                                   is_superuser=is_superuser, is_staff=True)
        user.user_permissions.set([permission(index) for index in own])
        for number, indexes in enumerate(group_permissions):
            group = Group.objects.create(name=f"group {number}")
            group.permissions.set([permission(index) for index in indexes])
            if number in member_of:
                user.groups.add(group)
        # Someone else's permissions, own or through a group, must not leak in.
        every_permission = [permission(index) for index in range(len(CODENAMES))]
        other = User.objects.create(username="other")
        other.user_permissions.set(every_permission)
        others_group = Group.objects.create(name="others")
        others_group.permissions.set(every_permission)
        other.groups.add(others_group)

        assert answers(ModelBackend(), user.pk) == answers(django_backends.ModelBackend(), user.pk)


@pytest.mark.django_db
def test_one_query_answers_every_permission_question_of_a_request(django_assert_num_queries):
    user = User.objects.create(username="staff", is_staff=True)
    user.user_permissions.add(permission(0))
    user = User.objects.get(pk=user.pk)

    with django_assert_num_queries(1):
        assert ModelBackend().has_perm(user, "django_apscheduler.view_djangojob")
        assert not ModelBackend().has_perm(user, "django_apscheduler.change_djangojob")


def test_anonymous_users_have_no_permissions():
    assert ModelBackend().get_all_permissions(AnonymousUser()) == set()

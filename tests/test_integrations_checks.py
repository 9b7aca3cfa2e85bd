"""System checks of the integrations' task backend configuration."""

from importlib.util import find_spec

import pytest
from django.conf import settings
from django.test import override_settings

from wagtail_calltracking.integrations.checks import check_delivery_backend

DB_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
needs_db_backend = pytest.mark.skipif(
    not find_spec("django_tasks_db"), reason="django-tasks-db is not installed (Wagtail 7.0 stack)"
)
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


def ids(**calltracking):
    with override_settings(WAGTAIL_CALLTRACKING={**settings.WAGTAIL_CALLTRACKING, **calltracking}):
        return [message.id for message in check_delivery_backend()]


@pytest.mark.parametrize(
    "debug, tasks, expected",
    [
        (False, IMMEDIATE, ["wagtail_calltracking.W062"]),
        (True, IMMEDIATE, []),
        pytest.param(False, DB_BACKEND, [], marks=needs_db_backend),
    ],
)
def test_immediate_backend_in_production_warns(debug, tasks, expected):
    with override_settings(DEBUG=debug, TASKS=tasks):
        assert ids() == expected


def test_unknown_backend_alias():
    assert ids(TASK_BACKEND="nope") == ["wagtail_calltracking.E060"]


@needs_db_backend
def test_queue_not_served():
    tasks = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["mail"]}}
    with override_settings(TASKS=tasks):
        assert ids(TASK_QUEUE_NAME="calltracking") == ["wagtail_calltracking.E061"]
        assert ids(TASK_QUEUE_NAME="mail") == []


def test_bad_endpoint_and_backoff():
    with override_settings(DEBUG=True):
        assert ids(GA4_ENDPOINT="www.google-analytics.com") == ["wagtail_calltracking.E063"]
        assert ids(DELIVERY_MAX_BACKOFF_SECONDS=0) == ["wagtail_calltracking.E064"]
        assert ids(DELIVERY_MAX_BACKOFF_SECONDS="1h") == ["wagtail_calltracking.E064"]

"""Test settings: the example site with test-friendly overrides.

DATABASE_URL=postgres://postgres@127.0.0.1:5432/test runs the suite on PostgreSQL; the test
database name can be made unique per run with CALLTRACKING_TEST_DB_NAME (parallel runs on one
server must not share it).
"""

import importlib.util
import os

from example_site.settings import *  # noqa: F403
from example_site.settings import DATABASES, INSTALLED_APPS, WAGTAIL_CALLTRACKING

DEBUG = False
SECRET_KEY = "tests-secret-key"
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and not os.environ.get(
    "DATABASE_URL"
):
    DATABASES["default"]["NAME"] = ":memory:"
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("CALLTRACKING_TEST_DB_NAME")
    or ("test_calltracking" if "postgres" in DATABASES["default"]["ENGINE"] else None)
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# ENQUEUE_ON_COMMIT: django-tasks < 0.8 (Wagtail 7.0) would otherwise hold every task until
# the test's transaction commits, i.e. never; our code already enqueues after commit.
TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
        "ENQUEUE_ON_COMMIT": False,
    }
}
# The production task backend (django-tasks-db), for the tests of deferred delivery retries.
# Absent on the Wagtail 7.0 LTS stack (it pins django-tasks 0.7): those tests skip.
if importlib.util.find_spec("django_tasks_db"):
    INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

WAGTAIL_CALLTRACKING = {
    **WAGTAIL_CALLTRACKING,
    "TWILIO_AUTH_TOKEN": "twilio-test-token",
    "VONAGE_SIGNATURE_SECRET": "vonage-test-signature-secret-0123456789",
    "PLIVO_AUTH_TOKEN": "plivo-test-token",
    "TELNYX_PUBLIC_KEY": None,  # set per test from a generated key pair
    "GENERIC_SECRET": "generic-test-secret",
    "DEMO_PROVIDER_ENABLED": True,
    "PUBLIC_BASE_URL": None,
}

LOGGING = {"version": 1, "disable_existing_loggers": False}

"""Settings of the example site. SQLite by default; DATABASE_URL=postgres://… switches engine.

Secrets come from the environment (never commit them): CALLTRACKING_TWILIO_AUTH_TOKEN,
CALLTRACKING_VONAGE_SIGNATURE_SECRET, CALLTRACKING_PLIVO_AUTH_TOKEN, CALLTRACKING_TELNYX_PUBLIC_KEY,
CALLTRACKING_GENERIC_SECRET, CALLTRACKING_PUBLIC_BASE_URL.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-site-insecure-key-for-the-demo-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "home",
    "wagtail_calltracking",
    "wagtail.contrib.settings",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django_tasks",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "wagtail_calltracking.middleware.CallTrackingMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "example_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wagtail.contrib.settings.context_processors.settings",
            ],
        },
    },
]

WSGI_APPLICATION = "example_site.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front: concurrent number leasing on
    # SQLite then waits instead of failing with "database is locked".
    # WAL lets readers run while a page view is written; synchronous=NORMAL drops the fsync
    # on every commit (still durable across application crashes).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "America/New_York"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / "media"

WAGTAIL_SITE_NAME = "Acme Plumbing"
WAGTAILADMIN_BASE_URL = os.environ.get("WAGTAILADMIN_BASE_URL", "http://127.0.0.1:8000")

# Background deliveries (GA4, Google Ads feed, CRM webhooks): run immediately in the demo.
# In production use the database backend and run `manage.py db_worker` (see the README).
TASKS = {
    "default": {
        "BACKEND": os.environ.get(
            "CALLTRACKING_TASK_BACKEND", "django_tasks.backends.immediate.ImmediateBackend"
        )
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"wagtail_calltracking": {"handlers": ["console"], "level": "INFO"}},
}

WAGTAIL_CALLTRACKING = {
    "DEFAULT_REGION": "US",
    "PUBLIC_BASE_URL": os.environ.get("CALLTRACKING_PUBLIC_BASE_URL") or None,
    "TWILIO_AUTH_TOKEN": os.environ.get("CALLTRACKING_TWILIO_AUTH_TOKEN") or None,
    "VONAGE_SIGNATURE_SECRET": os.environ.get("CALLTRACKING_VONAGE_SIGNATURE_SECRET") or None,
    "PLIVO_AUTH_TOKEN": os.environ.get("CALLTRACKING_PLIVO_AUTH_TOKEN") or None,
    "TELNYX_PUBLIC_KEY": os.environ.get("CALLTRACKING_TELNYX_PUBLIC_KEY") or None,
    "GENERIC_SECRET": os.environ.get("CALLTRACKING_GENERIC_SECRET") or None,
    # Simulated calls for the demo (calltracking_simulate_call). Off in production.
    "DEMO_PROVIDER_ENABLED": os.environ.get("CALLTRACKING_DEMO_PROVIDER", "1") == "1",
    # GA4 events go to the example site's local receiver (home/demo/receiver.py), never to
    # Google, unless CALLTRACKING_GA4_ENDPOINT=https://www.google-analytics.com is set.
    "GA4_ENDPOINT": os.environ.get("CALLTRACKING_GA4_ENDPOINT") or f"{WAGTAILADMIN_BASE_URL}/demo-receiver/ga4",
}

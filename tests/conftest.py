"""Shared fixtures. Area-specific fixtures live in the area's test modules or in
``tests/factories.py`` (plain functions that create rows)."""

import pytest
from django.db import connection
from django.test import Client, RequestFactory
from wagtail.models import Page, Site

# Area fixture modules (fixtures shared by an area's test files).
pytest_plugins = ["tests.integrations_fixtures", "tests.webhook_fixtures", "tests.privacy_fixtures"]

#: A real desktop browser. Requests without a user agent (the test client's default) are
#: treated as bots by the middleware, so the shared `client` and `rf` fixtures send this one.
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
MOBILE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup, django_db_blocker):
    """Live-server and multi-threaded tests can leave a server-side connection behind on
    PostgreSQL, which would keep pytest-django from dropping the test database."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for alias in connections:
            conn = connections[alias]
            if conn.vendor != "postgresql":
                continue
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture
def client():
    return Client(HTTP_USER_AGENT=BROWSER_UA)


@pytest.fixture
def rf():
    return RequestFactory(HTTP_USER_AGENT=BROWSER_UA)


@pytest.fixture
def home_page(db):
    """The example site's HomePage as the default site's root (replacing Wagtail's welcome page)."""
    from home.models import HomePage

    root = Page.get_first_root_node()
    if root is None:
        # A transactional test flushed the tables, Wagtail's initial data included.
        from django.conf import settings
        from wagtail.coreutils import get_supported_content_language_variant
        from wagtail.models import Locale

        Locale.objects.get_or_create(
            language_code=get_supported_content_language_variant(settings.LANGUAGE_CODE)
        )
        root = Page.add_root(instance=Page(title="Root", slug="root", live=True))
    existing = HomePage.objects.first()
    if existing:
        return existing
    home = root.add_child(instance=HomePage(title="Home", slug="home-test", intro="Welcome"))
    site = Site.objects.filter(is_default_site=True).first()
    if site is None:
        site = Site.objects.create(hostname="testserver", port=80, root_page=home, is_default_site=True)
    else:
        site.root_page = home
        site.hostname = "testserver"
        site.save()
    return home


@pytest.fixture
def site(home_page):
    return Site.objects.get(is_default_site=True)


@pytest.fixture
def content_page(home_page):
    from home.models import ContentPage

    return home_page.add_child(
        instance=ContentPage(title="Drain cleaning", slug="drain-cleaning", intro="Blocked drains")
    )


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL=postgres://…)")
    on_pg = connection.vendor == "postgresql"
    for item in items:
        if "postgres" in item.keywords and not on_pg:
            item.add_marker(skip_pg)

"""System checks for the settings namespace and the middleware placement."""

from django.test import override_settings

from wagtail_calltracking.checks import MIDDLEWARE_PATH, check_middleware, check_settings
from wagtail_calltracking.conf import DEFAULTS, ct_settings


def ids(messages):
    return sorted(m.id for m in messages)


def test_example_settings_are_clean():
    assert check_settings() == []
    assert check_middleware() == []


@override_settings(WAGTAIL_CALLTRACKING={"SESSION_TIMEOUT_MINUTS": 30})
def test_unknown_key_is_an_error_with_a_hint():
    (error,) = check_settings()
    assert error.id == "wagtail_calltracking.E002"
    assert "SESSION_TIMEOUT_MINUTES" in error.hint


@override_settings(WAGTAIL_CALLTRACKING=["not", "a", "dict"])
def test_namespace_must_be_a_dict():
    assert ids(check_settings()) == ["wagtail_calltracking.E001"]


@override_settings(
    WAGTAIL_CALLTRACKING={
        "SESSION_TIMEOUT_MINUTES": 0,
        "ACTIVITY_WRITE_INTERVAL_SECONDS": -1,
        "HONOUR_GPC": "yes",
        "IP_STORAGE": "partial",
        "DEFAULT_REGION": "XX",
        "EXCLUDE_PATHS": "/api/",
        "VISITOR_COOKIE_NAME": "bad name;",
        "CONSENT": {"accepted": ["yes"]},
    }
)
def test_invalid_values():
    errors = check_settings()
    assert ids(errors) == ["wagtail_calltracking.E003"] * 8
    assert any("IP_STORAGE" in e.msg for e in errors)


@override_settings(WAGTAIL_CALLTRACKING={"GEOLOCATORS": ["nowhere.to.be.found"]})
def test_unimportable_geolocator():
    assert ids(check_settings()) == ["wagtail_calltracking.E004"]


def test_middleware_missing_is_a_warning(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    assert ids(check_middleware()) == ["wagtail_calltracking.W001"]


def test_middleware_before_session_and_auth_is_an_error(settings):
    rest = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    settings.MIDDLEWARE = [MIDDLEWARE_PATH, *rest]
    assert ids(check_middleware()) == ["wagtail_calltracking.E010", "wagtail_calltracking.E010"]


def test_cache_middleware_after_is_a_warning(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.cache.UpdateCacheMiddleware"]
    assert ids(check_middleware()) == ["wagtail_calltracking.W011"]


def test_settings_are_read_lazily_with_defaults():
    assert DEFAULTS["SESSION_TIMEOUT_MINUTES"] == ct_settings.SESSION_TIMEOUT_MINUTES
    with override_settings(WAGTAIL_CALLTRACKING={"SESSION_TIMEOUT_MINUTES": 45}):
        assert ct_settings.SESSION_TIMEOUT_MINUTES == 45
    assert ct_settings.SESSION_TIMEOUT_MINUTES == 30
    with override_settings(WAGTAIL_CALLTRACKING={"TWILIO_AUTH_TOKEN": ["new", "old"]}):
        assert ct_settings.secrets("TWILIO_AUTH_TOKEN") == ["new", "old"]

"""Public endpoints: ``path("calltracking/", include("wagtail_calltracking.urls"))``."""

from django.urls import path

from . import views
from .integrations import views as integration_views

app_name = "wagtail_calltracking"

urlpatterns: list = []

# Telephony webhooks: webhooks/<provider>/voice/, webhooks/<provider>/status/ and the
# per-provider extras (dial/, recording/, whisper/); see webhooks/registry.py.
from .webhooks.registry import urlpatterns as webhook_urlpatterns  # noqa: E402

urlpatterns += webhook_urlpatterns()

# Cache-safe mode: the deferred script asks for the visitor's number here (private, no-store).
urlpatterns += [path("number/", views.number_view, name="number")]

# Google Ads scheduled uploads fetch conversions here (token in the URL, or basic auth).
urlpatterns += [
    path(
        "integrations/google-ads/<str:token>/conversions.csv",
        integration_views.feed_by_token,
        name="google_ads_feed",
    ),
    path(
        "integrations/google-ads/conversions.csv",
        integration_views.feed_basic_auth,
        name="google_ads_feed_basic_auth",
    ),
]

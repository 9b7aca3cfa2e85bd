"""Demo integrations: a GA4 property, a Google Ads feed and a CRM webhook, all answered by the
example site itself (``home/demo/receiver.py``): the demo never calls Google or a real CRM.

Simulate an answered call from a visitor who came from a Google ad, then open
Call tracking › Deliveries: the GA4 event, the CRM webhooks (with the receiver's answer) and
the Google Ads row are there; the feed URL is on the feed's page.
"""

from django.conf import settings
from django.urls import reverse
from wagtail.models import Site

from wagtail_calltracking.models import CRMEndpoint, GA4Property, GoogleAdsFeed

DEMO_MEASUREMENT_ID = "G-DEMO12345"


def base_url():
    return getattr(settings, "WAGTAILADMIN_BASE_URL", "http://127.0.0.1:8000").rstrip("/")


def load(stdout):
    site = Site.objects.filter(is_default_site=True).first()

    GA4Property.objects.get_or_create(
        measurement_id=DEMO_MEASUREMENT_ID,
        site=site,
        defaults={
            "name": "Acme Plumbing (demo, answered locally)",
            "api_secret": "demo-api-secret",
            "event_name": "phone_call",
            "answered_only": True,
        },
    )
    feed, _ = GoogleAdsFeed.objects.get_or_create(
        name="Google Ads phone calls (demo)",
        defaults={
            "site": site,
            "conversion_name": "Phone call",
            "time_zone": settings.TIME_ZONE,
            "min_talk_seconds": 30,
            "default_value": 50,
            "default_currency": "USD",
        },
    )
    CRMEndpoint.objects.get_or_create(
        name="Demo CRM (local receiver)",
        defaults={
            "site": site,
            "url": f"{base_url()}/demo-receiver/crm/",
            "on_call_started": True,
            "on_call_completed": True,
            "on_call_tagged": True,
        },
    )
    feed_path = reverse("wagtail_calltracking:google_ads_feed", args=[feed.feed_token])
    stdout.write(f"  GA4 and the CRM webhook are answered by {base_url()}/demo-receiver/")
    stdout.write(f"  Google Ads feed: {base_url()}{feed_path}")

"""Fixtures (a pytest plugin, listed in tests/conftest.py) and helpers of the privacy,
retention and hostile-input tests: a site whose pages show pool numbers to every visitor, real
page views through the middleware, and calls reported through the demo telephony provider
(the same path as a real provider)."""

from __future__ import annotations

import json
import re

import pytest
from django.core.cache import caches

from wagtail_calltracking.conf import ct_settings
from wagtail_calltracking.models import CallTrackingSiteSettings, PoolAudience
from wagtail_calltracking.webhooks import forwarding

from .factories import make_number, make_pool, make_source

CANONICAL = "+12125550100"
FALLBACK_FORWARD = "+12125550199"
NEWSPAPER_NUMBER = "+13125550142"
CALLER = "+13125550177"
OTHER_CALLER = "+13125550188"
PAID_LANDING = "/?utm_source=google&utm_medium=cpc&utm_campaign=spring&utm_term=plumber&gclid=GCLID-PRIVACY-1"

_NUMBER_LINK = re.compile(r'<a href="tel:(\+\d+)"[^>]*class="calltracking-(number|canonical)[^"]*"')


@pytest.fixture
def clean_caches():
    """Configuration and rate-limit caches, and the fail-open destination memory, start empty."""
    forwarding._last_destination.clear()
    caches[ct_settings.CACHE_ALIAS].clear()
    yield
    forwarding._last_destination.clear()
    caches[ct_settings.CACHE_ALIAS].clear()


@pytest.fixture
def tracked_site(site):
    """The default site with a canonical number, a fallback destination, a pool serving every
    visitor and a static "Newspaper" source (landing /?ct=newspaper)."""
    CallTrackingSiteSettings.objects.update_or_create(
        site=site, defaults={"canonical_number": CANONICAL, "fallback_forward_to": FALLBACK_FORWARD}
    )
    pool = make_pool(size=4, site=site, name="Website", audience=PoolAudience.ALL, hold_minutes=20)
    newspaper = make_source(
        name="Newspaper",
        site=site,
        landing_parameter="newspaper",
        static_number=make_number(number=NEWSPAPER_NUMBER, site=site, label="Newspaper ad"),
    )
    caches[ct_settings.CACHE_ALIAS].clear()
    return {"site": site, "pool": pool, "newspaper": newspaper}


def shown_number(html: bytes | str) -> str | None:
    """The E.164 number of the first tracking (or canonical) link on a page."""
    if isinstance(html, bytes):
        html = html.decode()
    match = _NUMBER_LINK.search(html)
    return match.group(1) if match else None


def demo_post(client, endpoint, document):
    return client.post(
        f"/calltracking/webhooks/demo/{endpoint}/", json.dumps(document), content_type="application/json"
    )


def ring(client, number, *, caller=CALLER, call_id="privacy-call-1", caller_name="Jane Caller",
         recording_url="https://recordings.example.com/rec-1.mp3", talk_seconds=95):
    """A call to ``number`` from ``caller``: incoming, answered and completed, with a recording."""
    voice = demo_post(client, "voice", {"call_id": call_id, "from": caller, "to": number, "caller_name": caller_name})
    assert voice.status_code == 200, voice.content
    status = demo_post(
        client,
        "status",
        [
            {"event": "completed", "call_id": call_id, "result": "answered", "talk_seconds": talk_seconds},
            {"event": "recording", "call_id": call_id, "recording_url": recording_url, "recording_duration": 90},
        ],
    )
    assert status.status_code == 200, status.content
    return voice.json()

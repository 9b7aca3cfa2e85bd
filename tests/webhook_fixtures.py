"""Fixtures (a pytest plugin, see conftest) and signing helpers of the webhook and
attribution tests. Test modules add ``pytestmark = pytest.mark.usefixtures("forget_destinations")``.

Requests are signed with the providers' own code wherever it exists (twilio's
RequestValidator, plivo's signature_v3, PyJWT for Vonage, PyNaCl for Telnyx), so the tests
check our verification against the real algorithms, not against our own reading of them.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from urllib.parse import urlencode

import jwt
import pytest
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone
from nacl.encoding import Base64Encoder
from nacl.signing import SigningKey
from plivo.utils import signature_v3 as plivo_signature_v3
from twilio.request_validator import RequestValidator

from wagtail_calltracking.conf import ct_settings
from wagtail_calltracking.models import CallTrackingSiteSettings, Lease, Manager, PoolAudience
from wagtail_calltracking.webhooks import forwarding

from .factories import make_number, make_pool, make_session, make_source

TWILIO_TOKEN = "twilio-test-token"
VONAGE_SECRET = "vonage-test-signature-secret-0123456789"
PLIVO_TOKEN = "plivo-test-token"
GENERIC_SECRET = "generic-test-secret"

FALLBACK_FORWARD = "+12125550199"
SALES_LINE = "+12125550150"
CALLER = "+13125550177"
BASE = "http://testserver"


def webhook_path(provider, endpoint):
    return f"/calltracking/webhooks/{provider}/{endpoint}/"


@pytest.fixture
def forget_destinations():
    """Each test starts without remembered forwarding destinations (fail-open memory)."""
    forwarding._last_destination.clear()
    caches[ct_settings.CACHE_ALIAS].clear()
    yield
    forwarding._last_destination.clear()
    caches[ct_settings.CACHE_ALIAS].clear()


@pytest.fixture
def call_settings(site):
    row, _ = CallTrackingSiteSettings.objects.update_or_create(
        site=site,
        defaults={"canonical_number": "+12125550100", "fallback_forward_to": FALLBACK_FORWARD},
    )
    return row


@pytest.fixture
def webhook_pool(site):
    return make_pool(size=3, site=site, name="Online", audience=PoolAudience.SOURCES, hold_minutes=20)


@pytest.fixture
def ads_source(site, webhook_pool):
    return make_source(
        name="Google Ads", site=site, channel="paid_search", utm_source="google", pool=webhook_pool
    )


@pytest.fixture
def newspaper_source(site):
    number = make_number(number="+13125550142", label="Newspaper ad", site=site)
    return make_source(
        name="Newspaper", site=site, landing_parameter="newspaper", static_number=number, forward_to=SALES_LINE
    )


@pytest.fixture
def paid_visit(site, ads_source):
    """A paid-search session holding a live lease on the pool's first number."""
    started = timezone.now() - timedelta(minutes=5)
    session = make_session(
        site=site,
        started_at=started,
        last_activity_at=started + timedelta(minutes=3),
        channel="paid_search",
        source="google",
        medium="cpc",
        campaign="spring",
        keyword="emergency plumber",
        landing_path="/emergency-plumbing/",
        gclid="Cj0KCQ-test-gclid",
        ga_client_id="1197596843.1673515099",
        ga_session_ids={"G-TEST": "1673515099"},
        matched_source=ads_source,
        ip_address="203.0.113.9",
        browser="Chrome",
        device_type="mobile",
        region="Illinois",
        city="Chicago",
    )
    number = ads_source.pool.numbers.order_by("number").first()
    lease = lease_number(number, session, started, started + timedelta(minutes=3))
    return session, number, lease


def lease_number(number, session, leased_at, last_seen_at=None, released_at=None, reclaimed=False, live=True):
    lease = Lease.objects.create(
        number=number,
        pool=number.pool,
        session=session,
        leased_at=leased_at,
        last_seen_at=last_seen_at or leased_at,
        released_at=released_at,
        reclaimed=reclaimed,
        release_reason="expired" if released_at else "",
    )
    if live and released_at is None:
        number.current_lease = lease
        type(number).objects.filter(pk=number.pk).update(current_lease=lease)
    return lease


@pytest.fixture
def managers(site):
    return [
        Manager.objects.create(name="Alice", phone=SALES_LINE, extension="201", site=site),
        Manager.objects.create(name="Bob", phone="+12125550151", extension="202"),
    ]


# --- signing ---------------------------------------------------------------------------------


def twilio_post(client, path, params, *, token=TWILIO_TOKEN, url=None, query="", headers=None):
    full_path = path + (f"?{query}" if query else "")
    signed_url = url or BASE + full_path
    signature = RequestValidator(token).compute_signature(signed_url, params)
    return client.post(
        full_path,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
        **(headers or {}),
    )


def plivo_post(client, path, params, *, token=PLIVO_TOKEN, url=None, query="", method="POST"):
    full_path = path + (f"?{query}" if query else "")
    signed_url = url or BASE + full_path
    nonce = uuid.uuid4().hex
    if method == "GET":
        base = plivo_signature_v3.construct_get_url(signed_url, dict(params)).decode()
    else:
        base = plivo_signature_v3.construct_post_url(signed_url, {k: [v] for k, v in params.items()}).decode()
    signature = plivo_signature_v3.get_signature_v3(token.encode(), base, nonce.encode()).decode()
    assert plivo_signature_v3.validate_v3_signature(method, signed_url, nonce, token, signature, {k: [v] for k, v in params.items()} if method == "POST" else dict(params))
    headers = {"HTTP_X_PLIVO_SIGNATURE_V3": signature, "HTTP_X_PLIVO_SIGNATURE_V3_NONCE": nonce}
    if method == "GET":
        separator = "&" if "?" in full_path else "?"
        return client.get(full_path + (separator + urlencode(params) if params else ""), **headers)
    return client.post(full_path, urlencode(params), content_type="application/x-www-form-urlencoded", **headers)


def vonage_token(body=b"", *, secret=VONAGE_SECRET, iat=None, payload_hash=None, **claims):
    payload = {
        "iat": int(time.time() if iat is None else iat),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": "abcd1234",
        "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        **claims,
    }
    if body or payload_hash:
        payload["payload_hash"] = payload_hash or hashlib.sha256(body).hexdigest()
    return jwt.encode(payload, secret, algorithm="HS256")


def vonage_post(client, path, document, **token_kwargs):
    body = json.dumps(document).encode()
    token = vonage_token(body, **token_kwargs)
    return client.post(path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def vonage_get(client, path, params, **token_kwargs):
    token = vonage_token(b"", **token_kwargs)
    return client.get(path + "?" + urlencode(params), HTTP_AUTHORIZATION=f"Bearer {token}")


class TelnyxKeys:
    def __init__(self):
        self.signing_key = SigningKey.generate()
        self.public_key = self.signing_key.verify_key.encode(encoder=Base64Encoder).decode()

    def headers(self, body: bytes, timestamp=None):
        timestamp = str(int(time.time()) if timestamp is None else timestamp)
        signed = self.signing_key.sign(timestamp.encode() + b"|" + body)
        return {
            "HTTP_TELNYX_SIGNATURE_ED25519": base64.b64encode(signed.signature).decode(),
            "HTTP_TELNYX_TIMESTAMP": timestamp,
        }


@pytest.fixture
def telnyx_keys():
    keys = TelnyxKeys()
    with override_settings(
        WAGTAIL_CALLTRACKING={**_current_settings(), "TELNYX_PUBLIC_KEY": keys.public_key}
    ):
        yield keys


def _current_settings():
    from django.conf import settings

    return dict(settings.WAGTAIL_CALLTRACKING)


def telnyx_post(client, keys, path, params=None, *, document=None, timestamp=None):
    if document is not None:
        body = json.dumps(document).encode()
        content_type = "application/json"
    else:
        body = urlencode(params).encode()
        content_type = "application/x-www-form-urlencoded"
    return client.post(path, body, content_type=content_type, **keys.headers(body, timestamp))


def generic_post(client, path, document, *, secret=GENERIC_SECRET, timestamp=None, query=""):
    body = json.dumps(document).encode()
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return client.post(
        path + (f"?{query}" if query else ""),
        body,
        content_type="application/json",
        HTTP_X_CALLTRACKING_TIMESTAMP=timestamp,
        HTTP_X_CALLTRACKING_SIGNATURE=f"v1={signature}",
    )


def demo_post(client, endpoint, document):
    return client.post(webhook_path("demo", endpoint), json.dumps(document), content_type="application/json")


def settings_with(**values):
    """override_settings for a few WAGTAIL_CALLTRACKING keys."""
    return override_settings(WAGTAIL_CALLTRACKING={**_current_settings(), **values})

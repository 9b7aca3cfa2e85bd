"""The Google Ads conversion feed: the URL Google Ads' scheduled uploads fetch.

Two ways to authenticate, both backed by the feed's secret token:

- the token in the URL: ``/calltracking/integrations/google-ads/<token>/conversions.csv``;
- HTTP basic auth on ``/calltracking/integrations/google-ads/conversions.csv`` with the
  username ``feed<id>`` and the token as password (Google's "HTTPS with username and
  password" source).

Unknown tokens answer 404 (token URL) or 401 (basic auth) without saying which part was
wrong. Serve it over HTTPS only: the token is the only secret.
"""

from __future__ import annotations

import base64
import binascii

from django.http import Http404, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_safe

from ..models import GoogleAdsFeed
from .google_ads import feed_rows, mark_fetched, render_csv


def csv_response(feed: GoogleAdsFeed, *, mark: bool, download: bool = False) -> HttpResponse:
    rows = list(feed_rows(feed))
    response = HttpResponse(render_csv(feed, rows), content_type="text/csv; charset=utf-8")
    filename = f"google-ads-conversions-{feed.pk}.csv"
    disposition = "attachment" if download else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    # Per-feed secret content: never cached by a proxy or CDN.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    if mark:
        mark_fetched(feed, [row.pk for row in rows])
    return response


def _feed_for_token(token: str) -> GoogleAdsFeed | None:
    if not token or len(token) > 64:
        return None
    feed = GoogleAdsFeed.objects.filter(feed_token=token, active=True).first()
    # The lookup is by an indexed equality; compare again in constant time for good measure.
    if feed is None or not constant_time_compare(feed.feed_token, token):
        return None
    return feed


@require_safe
def feed_by_token(request, token):
    feed = _feed_for_token(token)
    if feed is None:
        raise Http404("No such feed")
    # HEAD (a reachability check) does not count as Google fetching the rows.
    return csv_response(feed, mark=request.method == "GET")


def _unauthorized():
    response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Basic realm="Google Ads conversion feed", charset="UTF-8"'
    return response


@require_safe
def feed_basic_auth(request):
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return _unauthorized()
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return _unauthorized()
    username, separator, password = decoded.partition(":")
    feed = _feed_for_token(password) if separator else None
    if feed is None or not constant_time_compare(username, feed.basic_auth_username):
        return _unauthorized()
    return csv_response(feed, mark=request.method == "GET")

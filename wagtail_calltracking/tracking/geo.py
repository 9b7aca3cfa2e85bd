"""Pluggable geolocation: the visitor's country, region and city, looked up once per session.

A geolocator is any callable ``(request, ip) -> dict | None`` returning some of ``country``
(ISO 3166-1 alpha-2), ``region`` and ``city``. ``GEOLOCATORS`` lists dotted paths tried in
order; the first non-empty answer wins. CDN headers cost nothing; GeoIP2 needs a database
(``GEOIP_PATH`` and the ``geoip2`` package, as for ``django.contrib.gis.geoip2``).
"""

from __future__ import annotations

import functools
import logging
from urllib.parse import unquote

from django.utils.module_loading import import_string

from ..conf import ct_settings
from .text import clean_text

logger = logging.getLogger(__name__)

# Country codes CDNs use for "unknown" or anonymisers.
_NO_COUNTRY = {"", "XX", "T1", "ZZ", "A1", "A2", "O1"}


def _header(request, name: str, max_length: int = 128) -> str:
    value = request.META.get(name, "")
    # CloudFront and App Engine URL-encode non-ASCII city names.
    return clean_text(unquote(value) if "%" in value else value, max_length)


def _country(value: str) -> str:
    value = value.strip().upper()
    return "" if value in _NO_COUNTRY or len(value) != 2 or not value.isalpha() else value


def cdn_headers(request, ip):
    """Cloudflare (CF-IPCountry, and the visitor-location headers of its managed transform),
    CloudFront (CloudFront-Viewer-*) and Google App Engine (X-AppEngine-*)."""
    candidates = (
        ("HTTP_CF_IPCOUNTRY", "HTTP_CF_REGION", "HTTP_CF_IPCITY"),
        (
            "HTTP_CLOUDFRONT_VIEWER_COUNTRY",
            "HTTP_CLOUDFRONT_VIEWER_COUNTRY_REGION_NAME",
            "HTTP_CLOUDFRONT_VIEWER_CITY",
        ),
        ("HTTP_X_APPENGINE_COUNTRY", "HTTP_X_APPENGINE_REGION", "HTTP_X_APPENGINE_CITY"),
    )
    for country_header, region_header, city_header in candidates:
        country = _country(_header(request, country_header, 8))
        if country:
            region = _header(request, region_header) or (
                _header(request, "HTTP_CLOUDFRONT_VIEWER_COUNTRY_REGION")
                if country_header.startswith("HTTP_CLOUDFRONT")
                else ""
            )
            city = _header(request, city_header)
            if city == "?":
                city = ""
            return {"country": country, "region": region, "city": city}
    return None


@functools.cache
def _geoip2_reader():
    from django.conf import settings

    if not getattr(settings, "GEOIP_PATH", None):
        return None
    try:
        from django.contrib.gis.geoip2 import GeoIP2

        return GeoIP2()
    except Exception as error:  # missing package or database: say so once, then skip
        logger.warning("GeoIP2 geolocation disabled: %s", error)
        return None


def geoip2_database(request, ip):
    """Django's GeoIP2 wrapper, when ``GEOIP_PATH`` points at a MaxMind/DB-IP database."""
    if not ip:
        return None
    reader = _geoip2_reader()
    if reader is None:
        return None
    try:
        city = reader.city(ip)
    except Exception:  # private or unknown address
        try:
            country = _country(reader.country_code(ip) or "")
        except Exception:
            return None
        return {"country": country} if country else None
    return {
        "country": _country(city.get("country_code") or ""),
        "region": clean_text(city.get("region_name") or city.get("region") or "", 128),
        "city": clean_text(city.get("city") or "", 128),
    }


@functools.cache
def _load(path: str):
    return import_string(path)


def locate(request, ip) -> dict:
    """Ask each configured geolocator in turn; never raises."""
    for path in ct_settings.GEOLOCATORS or ():
        try:
            result = _load(path)(request, ip)
        except Exception:
            logger.exception("Geolocator %s failed", path)
            continue
        if result and any(result.values()):
            return {
                "country": _country(result.get("country") or ""),
                "region": clean_text(result.get("region"), 128),
                "city": clean_text(result.get("city"), 128),
            }
    return {}

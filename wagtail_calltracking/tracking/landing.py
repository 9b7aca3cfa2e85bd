"""Where a visit came from: campaign parameters, click ids and the referrer → channel.

Pure functions over strings (no request, no database), shared by the middleware and the
cache-safe endpoint so both record a landing identically.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from ..conf import ct_settings
from ..models.choices import Channel
from . import referrers
from .text import clean_text

UTM_PARAMETERS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CLICK_IDS = tuple(referrers.CLICK_ID_DEFAULTS)

_PAID = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*|sem)$")
_PAID_SOCIAL = re.compile(r"^(paid[_ -]?social|social[_ -]?paid|sm[_ -]?paid|paidsocial)$")
_DISPLAY = re.compile(r"^(display|banner|cpm|expandable|interstitial|video|native)$")
_SOCIAL = re.compile(r"^(social|social[_ -]?network|social[_ -]?media|sm|organic[_ -]?social)$")
_EMAIL = re.compile(r"^(e[_ -]?mail|newsletter|mailing)$")
_OFFLINE = re.compile(r"^(offline|print|radio|tv|billboard|qr|qr[_ -]?code|direct[_ -]?mail|flyer|outdoor)$")
_REFERRAL = re.compile(r"^(referral|affiliate|partner)$")


@dataclass
class Landing:
    """The source attributes of a session, ready to be copied onto ``VisitorSession``."""

    channel: str = Channel.DIRECT
    source: str = "(direct)"
    medium: str = "(none)"
    campaign: str = ""
    term: str = ""
    content: str = ""
    keyword: str = ""
    referrer: str = ""
    referrer_domain: str = ""
    landing_path: str = ""
    landing_query: str = ""
    click_ids: dict[str, str] = field(default_factory=dict)
    #: Short hash of the campaign parameters: a change starts a new session.
    campaign_key: str = ""

    @property
    def has_campaign(self) -> bool:
        return bool(self.campaign_key)

    def session_fields(self) -> dict[str, str]:
        values = {
            "channel": self.channel,
            "source": self.source,
            "medium": self.medium,
            "campaign": self.campaign,
            "term": self.term,
            "content": self.content,
            "keyword": self.keyword,
            "referrer": self.referrer,
            "referrer_domain": self.referrer_domain,
            "landing_path": self.landing_path,
            "landing_query": self.landing_query,
        }
        values.update(self.click_ids)
        return values


def parse_query(query_string: str) -> dict[str, str]:
    """First value of each parameter, keys lower-cased; never raises."""
    params: dict[str, str] = {}
    try:
        pairs = parse_qsl(query_string or "", keep_blank_values=False, max_num_fields=200)
    except ValueError:  # more than max_num_fields
        pairs = parse_qsl((query_string or "")[:8192], keep_blank_values=False)[:200]
    for key, value in pairs:
        key = key.strip().lower()
        if key and key not in params:
            params[key] = value
    return params


def campaign_key(params: dict[str, str]) -> str:
    """Hash of the parameters that identify a campaign; "" when there are none."""
    landing_parameter = (ct_settings.LANDING_PARAMETER or "").lower()
    names = (*UTM_PARAMETERS, *CLICK_IDS, landing_parameter)
    parts = [f"{name}={params[name]}" for name in names if name and params.get(name)]
    if not parts:
        return ""
    return hashlib.blake2b("&".join(parts).encode("utf-8", "replace"), digest_size=6).hexdigest()


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.lower().rstrip(".")


def _classify_medium(medium: str, source: str) -> str:
    medium = medium.lower().strip()
    source = source.lower().strip()
    is_search = bool(source) and referrers.search_engine_for(source + ".com") is not None or (
        source in referrers.SEARCH_ENGINES
    )
    is_social = source in referrers.SOCIAL_NETWORKS or (
        bool(source) and referrers.social_network_for(source + ".com") is not None
    )
    if _PAID_SOCIAL.match(medium):
        return Channel.PAID_SOCIAL
    if _DISPLAY.match(medium):
        return Channel.DISPLAY
    if _PAID.match(medium):
        return Channel.PAID_SOCIAL if is_social else Channel.PAID_SEARCH
    if _EMAIL.match(medium) or source in ("email", "newsletter"):
        return Channel.EMAIL
    if _SOCIAL.match(medium):
        return Channel.ORGANIC_SOCIAL
    if _OFFLINE.match(medium):
        return Channel.OFFLINE
    if medium == "organic":
        return Channel.ORGANIC_SEARCH
    if _REFERRAL.match(medium):
        return Channel.REFERRAL
    if is_search:
        return Channel.ORGANIC_SEARCH if not medium else Channel.OTHER_CAMPAIGN
    if is_social:
        return Channel.ORGANIC_SOCIAL
    return Channel.OTHER_CAMPAIGN


def classify(query_string: str, referrer: str, own_hosts: tuple[str, ...] = (), path: str = "") -> Landing:
    """Classify a landing from its query string and the HTTP referrer."""
    params = parse_query(query_string)
    referrer = clean_text(referrer, 2048)
    ref_host = _host(referrer)
    landing = Landing(
        landing_path=clean_text(path, 2048),
        landing_query=clean_text(query_string, 2048),
        campaign_key=campaign_key(params),
    )
    landing.click_ids = {
        name: clean_text(params[name], 255) for name in CLICK_IDS if params.get(name)
    }
    own = {h.lower() for h in own_hosts if h}
    external_referrer = bool(ref_host) and ref_host not in own
    if external_referrer:
        landing.referrer = referrer
        landing.referrer_domain = clean_text(ref_host.removeprefix("www."), 255)

    utm = {name: clean_text(params.get(name, ""), 255) for name in UTM_PARAMETERS}
    landing.campaign, landing.term, landing.content = (
        utm["utm_campaign"],
        utm["utm_term"],
        utm["utm_content"],
    )
    landing_parameter = (ct_settings.LANDING_PARAMETER or "").lower()
    offline_value = clean_text(params.get(landing_parameter, ""), 255) if landing_parameter else ""

    engine = referrers.search_engine_for(ref_host) if external_referrer else None
    referrer_keyword = ""
    if engine:
        ref_params = parse_query(urlsplit(referrer).query) if "?" in referrer else {}
        for name in engine[1]:
            if ref_params.get(name):
                referrer_keyword = clean_text(ref_params[name], 255)
                break

    if offline_value:
        # A vanity landing parameter printed in an offline ad (/?ct=newspaper).
        landing.channel = Channel.OFFLINE
        landing.source = offline_value
        landing.medium = utm["utm_medium"] or "offline"
        landing.campaign = landing.campaign or offline_value
    elif utm["utm_source"] or utm["utm_medium"]:
        landing.source = utm["utm_source"] or (engine[0] if engine else ref_host or "(not set)")
        landing.medium = utm["utm_medium"] or "(not set)"
        landing.channel = _classify_medium(landing.medium if utm["utm_medium"] else "", landing.source)
        if landing.click_ids and landing.channel in (Channel.OTHER_CAMPAIGN, Channel.ORGANIC_SEARCH):
            # Auto-tagging plus manual tags that don't say "paid": the click id wins.
            first = next(iter(landing.click_ids))
            landing.channel = referrers.CLICK_ID_DEFAULTS[first][2]
    elif landing.click_ids:
        # Auto-tagged ad click (Google Ads gclid, Microsoft msclkid …) without utm tags.
        first = next(name for name in CLICK_IDS if name in landing.click_ids)
        landing.source, landing.medium, landing.channel = referrers.CLICK_ID_DEFAULTS[first]
        if first == "fbclid" and engine is None and ref_host and not referrers.social_network_for(ref_host):
            landing.source = landing.referrer_domain or "facebook"
    elif not external_referrer:
        landing.channel, landing.source, landing.medium = Channel.DIRECT, "(direct)", "(none)"
    elif engine:
        landing.channel, landing.source, landing.medium = Channel.ORGANIC_SEARCH, engine[0], "organic"
    elif referrers.is_webmail(ref_host):
        landing.channel, landing.source, landing.medium = Channel.EMAIL, landing.referrer_domain, "email"
    elif network := referrers.social_network_for(ref_host):
        landing.channel, landing.source, landing.medium = Channel.ORGANIC_SOCIAL, network, "social"
    else:
        landing.channel, landing.source, landing.medium = (
            Channel.REFERRAL,
            landing.referrer_domain,
            "referral",
        )

    landing.keyword = landing.term or referrer_keyword
    return landing

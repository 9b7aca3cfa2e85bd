"""Which number a visitor sees: source matching and the cached number configuration.

Precedence (the combined method; ``docs/numbers.md`` documents it for users):

1. a template tag argument forcing a source or a pool (``{% tracking_number source="…" %}``);
2. sources with a landing rule (the landing parameter, ``/?ct=newspaper``, or a vanity
   landing path), by priority;
3. the other source rules (utm patterns, channel, referrer domain), by priority: the
   matching source's static number, or a number from its pool;
4. pools whose audience is "all visitors" or "all visitors except direct traffic";
5. the site's canonical number.

Steps 2–3 run once, when a session starts (:func:`match_source`, called by the middleware);
the result travels in the visitor cookie. Everything needed to decide is read from one
cached :class:`NumberConfig` per site, so that rendering a static number costs no query on a
warm cache. The cache is invalidated when a source, pool, number or the site settings are
saved or deleted (``signal_handlers``), immediately and again after the transaction commits.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from django.core.cache import caches
from django.db import transaction

from ..conf import ct_settings
from ..models.choices import Channel
from .phone import format_number

logger = logging.getLogger(__name__)

CACHE_KEY = "wagtail_calltracking:numbers:v1:{site_id}"
_NO_SITE = "none"


@functools.lru_cache(maxsize=4096)
def formatted(e164: str, style: str) -> str:
    """``format_number`` memoised: numbers are few and formatting parses with phonenumbers."""
    return format_number(e164, style)


@functools.lru_cache(maxsize=1024)
def _compile_patterns(patterns: str) -> re.Pattern | None:
    from ..models.numbers import split_patterns

    parts = split_patterns(patterns)
    if not parts:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(part)})" for part in parts), re.IGNORECASE)


def _normalise_landing_path(path: str) -> str:
    path = (path or "").split("?", 1)[0]
    return path.rstrip("/").lower() or "/"


@dataclass(frozen=True)
class PoolConfig:
    id: int
    name: str
    site_id: int | None
    audience: str
    hold_minutes: int
    cooldown_minutes: int
    exhaustion_policy: str
    #: The overflow number (E.164) or "" for the site's canonical number.
    fallback_e164: str
    fallback_number_id: int | None
    #: Active numbers in the pool when the configuration was cached.
    size: int


@dataclass(frozen=True)
class SourceRule:
    """A source and its compiled rules. ``source`` is the model instance (pickled in the
    cache, with no related objects loaded)."""

    source: object
    id: int
    name: str
    priority: int
    static_e164: str
    static_number_id: int | None
    pool_id: int | None
    landing_parameter: str
    landing_path: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    channel: str
    referrer_domain: str

    @property
    def has_landing_rule(self) -> bool:
        return bool(self.landing_parameter or self.landing_path)

    @property
    def has_rules(self) -> bool:
        return any(
            (
                self.landing_parameter,
                self.landing_path,
                self.utm_source,
                self.utm_medium,
                self.utm_campaign,
                self.channel,
                self.referrer_domain,
            )
        )

    def _landing_matches(self, session, landing_value: str) -> bool:
        """The landing parameter and the vanity path are alternatives: a flyer may print
        either (or both) and both must lead to the same number."""
        if self.landing_parameter:
            value = self.landing_parameter
            if landing_value == value:
                return True
            if session.channel == Channel.OFFLINE and (session.source or "").lower() == value:
                return True
        if self.landing_path:
            path = _normalise_landing_path(session.landing_path)
            if path == self.landing_path or path.startswith(self.landing_path + "/"):
                return True
        return False

    def matches(self, session, landing_value: str) -> bool:
        """Every filled rule must match (the landing parameter and the landing path count as
        one rule: either matches); a source without rules matches nothing (it is used only
        when a template forces it)."""
        if not self.has_rules:
            return False
        if self.has_landing_rule and not self._landing_matches(session, landing_value):
            return False
        for rule, value in (
            (self.utm_source, session.source),
            (self.utm_medium, session.medium),
            (self.utm_campaign, session.campaign),
        ):
            if rule:
                pattern = _compile_patterns(rule)
                if pattern is not None and not pattern.fullmatch((value or "").strip()):
                    return False
        if self.channel and session.channel != self.channel:
            return False
        if self.referrer_domain:
            domain = (session.referrer_domain or "").lower().removeprefix("www.")
            if domain != self.referrer_domain and not domain.endswith("." + self.referrer_domain):
                return False
        return True


@dataclass(frozen=True)
class NumberConfig:
    """Everything the tag needs to pick a number on one site, cached as one value."""

    site_id: int | None
    rules: tuple[SourceRule, ...]
    pools: dict[int, PoolConfig]
    #: Pools serving every visitor / every non-direct visitor, most specific first.
    audience_pools: tuple[int, ...]
    canonical_e164: str
    display_format: str
    cache_safe: bool
    site_name: str = ""
    sources_by_id: dict[int, SourceRule] = field(default_factory=dict)

    def source(self, key) -> SourceRule | None:
        """A source by id or (case-insensitive) name, as a tag argument names it."""
        if isinstance(key, SourceRule):
            return key
        if hasattr(key, "pk"):
            return self.sources_by_id.get(key.pk)
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            found = self.sources_by_id.get(int(key))
            if found is not None:
                return found
        name = str(key).strip().lower()
        return next((rule for rule in self.rules if rule.name.lower() == name), None)

    def pool(self, key) -> PoolConfig | None:
        if isinstance(key, PoolConfig):
            return key
        if hasattr(key, "pk"):
            return self.pools.get(key.pk)
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            found = self.pools.get(int(key))
            if found is not None:
                return found
        name = str(key).strip().lower()
        return next((pool for pool in self.pools.values() if pool.name.lower() == name), None)

    def audience_pool_for(self, channel: str | None) -> PoolConfig | None:
        """The pool serving a session of ``channel`` without a source (None = unknown)."""
        from ..models.numbers import PoolAudience

        for pool_id in self.audience_pools:
            pool = self.pools[pool_id]
            if pool.audience == PoolAudience.ALL:
                return pool
            if pool.audience == PoolAudience.NON_DIRECT and channel not in (None, Channel.DIRECT):
                return pool
        return None

    def needs_channel(self) -> bool:
        """A non-direct pool applies only once the session's channel is known."""
        from ..models.numbers import PoolAudience

        return any(
            self.pools[pool_id].audience == PoolAudience.NON_DIRECT for pool_id in self.audience_pools
        )

    def first_audience_pool(self) -> PoolConfig | None:
        return self.pools[self.audience_pools[0]] if self.audience_pools else None


def _cache():
    return caches[ct_settings.CACHE_ALIAS]


def _cache_key(site_id) -> str:
    return CACHE_KEY.format(site_id=site_id if site_id is not None else _NO_SITE)


def get_config(site) -> NumberConfig:
    """The number configuration of ``site`` (a Wagtail Site, its id or None): from the cache,
    or built with a handful of queries and cached for ``CONFIG_CACHE_SECONDS``."""
    site_id = getattr(site, "pk", site)
    key = _cache_key(site_id)
    cache = _cache()
    try:
        config = cache.get(key)
    except Exception:  # a broken cache backend must not take pages down
        logger.exception("Call tracking configuration cache unavailable")
        config = None
    if isinstance(config, NumberConfig):
        return config
    config = build_config(site_id)
    try:
        cache.set(key, config, int(ct_settings.CONFIG_CACHE_SECONDS))
    except Exception:
        logger.exception("Could not cache the call tracking configuration")
    return config


def build_config(site_id) -> NumberConfig:
    from django.db.models import Count, Q

    from ..models import CallTrackingSiteSettings, NumberPool, PoolAudience, Source

    site_filter = Q(site__isnull=True)
    if site_id is not None:
        site_filter |= Q(site_id=site_id)

    pools = {}
    pool_rows = (
        NumberPool.objects.filter(site_filter, active=True)
        .select_related("fallback_number")
        .annotate(active_numbers=Count("numbers", filter=Q(numbers__active=True)))
        .order_by("name", "pk")
    )
    for pool in pool_rows:
        fallback = pool.fallback_number if pool.fallback_number_id else None
        usable_fallback = fallback is not None and fallback.active
        pools[pool.pk] = PoolConfig(
            id=pool.pk,
            name=pool.name,
            site_id=pool.site_id,
            audience=pool.audience,
            hold_minutes=int(pool.hold_minutes),
            cooldown_minutes=int(pool.cooldown_minutes),
            exhaustion_policy=pool.exhaustion_policy,
            fallback_e164=fallback.number if usable_fallback else "",
            fallback_number_id=fallback.pk if usable_fallback else None,
            size=pool.active_numbers,
        )

    rules = []
    sources = (
        Source.objects.filter(site_filter, active=True)
        .select_related("static_number")
        .order_by("priority", "name", "pk")
    )
    for source in sources:
        number = source.static_number if source.static_number_id else None
        static_ok = number is not None and number.active and not number.pool_id
        if not static_ok and source.pool_id not in pools:
            continue  # nothing to show: inactive number or pool (a system check reports it)
        # Keep the cached instance small: no related objects travel in the cache.
        source._state.fields_cache = {}
        rules.append(
            SourceRule(
                source=source,
                id=source.pk,
                name=source.name,
                priority=source.priority,
                static_e164=number.number if static_ok else "",
                static_number_id=number.pk if static_ok else None,
                pool_id=None if static_ok else source.pool_id,
                landing_parameter=source.landing_parameter.strip().lower(),
                landing_path=_normalise_landing_path(source.landing_path) if source.landing_path else "",
                utm_source=source.utm_source,
                utm_medium=source.utm_medium,
                utm_campaign=source.utm_campaign,
                channel=source.channel,
                referrer_domain=source.referrer_domain.lower().removeprefix("www."),
            )
        )
    # Landing rules (offline campaigns) first, each group by priority.
    rules.sort(key=lambda rule: (not rule.has_landing_rule, rule.priority, rule.name, rule.id))

    audience_pools = tuple(
        pool.id
        for pool in sorted(pools.values(), key=lambda p: (p.site_id is None, p.name, p.id))
        if pool.audience in (PoolAudience.ALL, PoolAudience.NON_DIRECT)
    )

    canonical, display_format, cache_safe, site_name = "", "national", False, ""
    if site_id is not None:
        settings_row = (
            CallTrackingSiteSettings.objects.filter(site_id=site_id)
            .values("canonical_number", "display_format", "cache_safe_mode", "site__site_name")
            .first()
        )
        if settings_row:
            canonical = settings_row["canonical_number"] or ""
            display_format = settings_row["display_format"] or "national"
            cache_safe = bool(settings_row["cache_safe_mode"])
            site_name = settings_row["site__site_name"] or ""
        else:
            from wagtail.models import Site

            site_name = Site.objects.filter(pk=site_id).values_list("site_name", flat=True).first() or ""

    return NumberConfig(
        site_id=site_id,
        rules=tuple(rules),
        pools=pools,
        audience_pools=audience_pools,
        canonical_e164=canonical,
        display_format=display_format,
        cache_safe=cache_safe,
        site_name=site_name,
        sources_by_id={rule.id: rule for rule in rules},
    )


def invalidate_config(**kwargs) -> None:
    """Forget every site's cached configuration, now and once the transaction commits (so
    that a request reading the old rows in between cannot re-cache stale values)."""
    _invalidate()
    transaction.on_commit(_invalidate)


def _invalidate() -> None:
    from wagtail.models import Site

    try:
        site_ids = list(Site.objects.values_list("pk", flat=True))
    except Exception:  # during migrations the table may not exist yet
        site_ids = []
    keys = [_cache_key(site_id) for site_id in site_ids] + [_cache_key(None)]
    try:
        _cache().delete_many(keys)
    except Exception:
        logger.exception("Could not invalidate the call tracking configuration cache")


def landing_value(query_string: str) -> str:
    """The landing parameter's value in a query string, lower-cased ("" when absent)."""
    name = (ct_settings.LANDING_PARAMETER or "").lower()
    if not name or not query_string:
        return ""
    try:
        pairs = parse_qsl(query_string.lstrip("?"), max_num_fields=200)
    except ValueError:
        return ""
    for key, value in pairs:
        if key.strip().lower() == name:
            return value.strip().lower()
    return ""


def match_source(session, site, config: NumberConfig | None = None):
    """The configured :class:`~wagtail_calltracking.models.Source` whose rules match a new
    ``session`` (saved or not) on ``site``, or None. No query on a warm cache (``config``: the
    site's configuration, when the caller has it already).

    Landing rules (landing parameter, vanity path) are tried first, then the other rules;
    within each group by ascending priority. The middleware stores the result on the session
    and in the visitor cookie.
    """
    config = config or get_config(site)
    if not config.rules:
        return None
    value = landing_value(session.landing_query or "")
    for rule in config.rules:
        if rule.matches(session, value):
            return rule.source
    return None

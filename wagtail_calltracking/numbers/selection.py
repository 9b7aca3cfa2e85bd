"""Choosing the number a request shows, by the documented precedence (see ``rules``).

Used by the template tags and by the cache-safe endpoint. The result is memoised on the
request, so any number of tags on a page cost one lookup, and a pool is asked at most once
per request (two tags resolving to the same pool never lease two numbers).

Query budget per request: static source number or canonical number — none on a warm
configuration cache; pool number with a live lease — one SELECT, plus one UPDATE at most
once per ``LEASE_REFRESH_SECONDS``; a new number — the leasing transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from django.utils.functional import cached_property

from ..conf import ct_settings
from . import leasing
from .rules import NumberConfig, PoolConfig, SourceRule, formatted, get_config

logger = logging.getLogger(__name__)


class NumberKind:
    #: A source's static number (offline campaigns, or a source rule with one number).
    STATIC = "static"
    #: A pool number leased to this visitor's session.
    DYNAMIC = "dynamic"
    #: The pool was exhausted: its overflow number (or the canonical number) is shown.
    OVERFLOW = "overflow"
    #: The site's canonical number (no rule applies, untracked request, cache-safe HTML).
    CANONICAL = "canonical"
    #: No number configured at all.
    NONE = "none"


@dataclass(frozen=True)
class ShownNumber:
    """A number as a template shows it. ``{% tracking_number as num %}`` exposes it:
    ``num.e164``, ``num.national``, ``num.international``, ``num.tel_href``,
    ``num.is_dynamic``, ``num.source`` (the Source or None), ``num.display`` (the site's
    display format), ``num.kind``. ``{{ num }}`` is the formatted number, ``{{ num.link }}``
    the ``<a href="tel:…">`` link the tag renders."""

    e164: str
    kind: str
    display_format: str = "national"
    source: object = None
    pool_name: str = ""
    number_id: int | None = None
    lease_id: int | None = None
    reclaimed: bool = False
    #: The choice depended on the visitor (keep the response out of shared caches).
    personalised: bool = False
    #: Cache-safe key: which number the swap script asks the endpoint for ("" = default).
    swap_key: str | None = None
    #: Rendering options given to the tag.
    options: tuple = ()

    def __bool__(self) -> bool:
        return bool(self.e164)

    def __str__(self) -> str:
        return self.display

    @property
    def link(self) -> str:
        """The tag's markup (a safe string); includes the cache-safe script the first time."""
        from ..templatetags.calltracking import render_number

        return render_number(self)

    @property
    def is_dynamic(self) -> bool:
        return self.kind == NumberKind.DYNAMIC

    @property
    def is_static(self) -> bool:
        return self.kind == NumberKind.STATIC

    @property
    def is_canonical(self) -> bool:
        return self.kind in (NumberKind.CANONICAL, NumberKind.NONE)

    @cached_property
    def national(self) -> str:
        return formatted(self.e164, "national") if self.e164 else ""

    @cached_property
    def international(self) -> str:
        return formatted(self.e164, "international") if self.e164 else ""

    @property
    def display(self) -> str:
        if self.display_format == "international":
            return self.international
        if self.display_format == "e164":
            return self.e164
        return self.national

    @property
    def tel_href(self) -> str:
        return f"tel:{self.e164}" if self.e164 else ""

    @property
    def source_name(self) -> str:
        return str(self.source) if self.source is not None else ""

    @property
    def option(self):
        return dict(self.options)

    def as_json(self) -> dict:
        return {
            "e164": self.e164,
            "national": self.national,
            "international": self.international,
            "tel_href": self.tel_href,
            "display": self.display,
            "is_dynamic": self.is_dynamic,
            "kind": self.kind,
        }


class RequestNumbers:
    """Per-request memo of the numbers chosen (stored on the request)."""

    ATTRIBUTE = "_calltracking_numbers"

    def __init__(self):
        self.by_arguments: dict = {}
        self.by_pool: dict[int, leasing.LeaseResult | None] = {}
        self.script_rendered = False
        self.config: NumberConfig | None = None

    @classmethod
    def for_request(cls, request) -> RequestNumbers:
        memo = getattr(request, cls.ATTRIBUTE, None) if request is not None else None
        if memo is None:
            memo = cls()
            if request is not None:
                setattr(request, cls.ATTRIBUTE, memo)
        return memo


def config_for_request(request) -> NumberConfig:
    """The site's number configuration, looked up (cache read, site lookup) once per request
    however many tags render."""
    memo = RequestNumbers.for_request(request) if request is not None else None
    if memo is not None and memo.config is not None:
        return memo.config
    site = None
    if request is not None:
        from ..tracking.context import get_tracking_context

        site = get_tracking_context(request).site
    if site is None:
        from wagtail.models import Site

        site = Site.objects.filter(is_default_site=True).first()
    config = get_config(site)
    if memo is not None:
        memo.config = config
    return config


def canonical_number(config: NumberConfig, display_format: str | None = None) -> ShownNumber:
    return ShownNumber(
        e164=config.canonical_e164,
        kind=NumberKind.CANONICAL if config.canonical_e164 else NumberKind.NONE,
        display_format=display_format or config.display_format,
    )


def number_for_request(request, *, source=None, pool=None, display_format=None,
                       context=None, config: NumberConfig | None = None) -> ShownNumber:
    """The number ``request`` shows (memoised per request and arguments)."""
    memo = RequestNumbers.for_request(request)
    key = (_key(source), _key(pool))
    chosen = memo.by_arguments.get(key)
    if chosen is None:
        if context is None:
            from ..tracking.context import get_tracking_context

            context = get_tracking_context(request) if request is not None else None
        config = config or config_for_request(request)
        chosen = Selector(context, config, memo).select(source=source, pool=pool)
        memo.by_arguments[key] = chosen
    if display_format and display_format != chosen.display_format:
        chosen = replace(chosen, display_format=display_format)
    return chosen


def _key(value):
    if value is None or value == "":
        return None
    return ("pk", value.pk) if hasattr(value, "pk") else str(value).strip().lower()


class Selector:
    """Applies the precedence for one request."""

    def __init__(self, context, config: NumberConfig, memo: RequestNumbers | None = None):
        self.context = context
        self.config = config
        self.memo = memo or RequestNumbers()

    # -- public ---------------------------------------------------------------------------

    def select(self, *, source=None, pool=None) -> ShownNumber:
        config = self.config
        if source not in (None, ""):
            rule = config.source(source)
            if rule is None:
                logger.warning("{%% tracking_number %%}: no active source %r", source)
                return self.canonical()
            return self.for_source(rule, forced=True)
        if pool not in (None, ""):
            pool_config = config.pool(pool)
            if pool_config is None:
                logger.warning("{%% tracking_number %%}: no active pool %r", pool)
                return self.canonical()
            return self.from_pool(pool_config, swap_key=f"p:{pool_config.id}")
        rule = self.matched_rule()
        if rule is not None:
            return self.for_source(rule, forced=False)
        if config.audience_pools:
            return self.from_audience_pools()
        return self.canonical()

    def matched_rule(self) -> SourceRule | None:
        """The source matched when the session started (carried in the cookie), or — for a
        session that starts with this request — the one its landing matches (no row is
        created for that: a static number needs none)."""
        context, config = self.context, self.config
        if context is None or not context.is_tracked or not config.rules:
            return None
        if context.session_id is not None:
            matched = context.matched_source_id
            return config.sources_by_id.get(matched) if matched else None
        from ..models import VisitorSession
        from .rules import match_source

        provisional = VisitorSession(**context.landing.session_fields())
        source = match_source(provisional, config.site_id)
        return config.sources_by_id.get(source.pk) if source is not None else None

    def canonical(self, swap_key: str | None = "") -> ShownNumber:
        return replace(canonical_number(self.config), swap_key=swap_key)

    # -- branches -------------------------------------------------------------------------

    def for_source(self, rule: SourceRule, *, forced: bool) -> ShownNumber:
        swap_key = f"s:{rule.id}" if forced else ""
        if rule.static_e164:
            # A forced static source shows the same number to everyone; a matched one
            # depends on how this visitor arrived.
            if not forced:
                self._personalise()
            return ShownNumber(
                e164=rule.static_e164,
                kind=NumberKind.STATIC,
                display_format=self.config.display_format,
                source=rule.source,
                number_id=rule.static_number_id,
                personalised=not forced,
                swap_key=swap_key,
            )
        pool = self.config.pools.get(rule.pool_id)
        if pool is None:
            return self.canonical(swap_key)
        return self.from_pool(pool, source=rule, swap_key=swap_key)

    def from_pool(self, pool: PoolConfig, *, source: SourceRule | None = None,
                  swap_key: str | None = "") -> ShownNumber:
        context = self.context
        if context is None or not context.is_tracked:
            return self.canonical(swap_key)  # bots, previews, requests without the middleware
        if not context.consented:
            if not ct_settings.DYNAMIC_NUMBERS_WITHOUT_CONSENT:
                return self.canonical(swap_key)
            result = self._ask_pool(pool, None, new_session=True)
            return self._shown(result, pool, source, swap_key)
        session_id = context.session_id
        if session_id is None:
            session_id = context.ensure_session()
            if session_id is None:
                return self.canonical(swap_key)
        # A session created during this request holds no lease yet (other than those
        # memoised per pool): no need to look one up.
        new_session = bool(getattr(context, "session_created", False))
        result = self._ask_pool(pool, session_id, new_session=new_session)
        if result is None:
            context.session_vanished()
        return self._shown(result, pool, source, swap_key)

    def from_audience_pools(self) -> ShownNumber:
        """Sessions without a source: pools serving all (or all non-direct) visitors."""
        config, context = self.config, self.context
        if context is None or not context.is_tracked:
            return self.canonical()
        session_id = context.session_id if context.consented else None
        if session_id is None:
            # A new session: its channel is the landing's (no query).
            pool = config.audience_pool_for(context.landing.channel)
            if pool is None:
                return self.canonical()
            return self.from_pool(pool)
        if not config.needs_channel():
            return self.from_pool(config.first_audience_pool())
        # Continuing session and a non-direct pool: read the channel together with the
        # session's lease (one SELECT).
        lookup = leasing.lookup_session_lease(session_id, config.audience_pools)
        if lookup is None:  # the session vanished (purged, erased)
            context.session_vanished()
            return self.canonical()
        pool = config.audience_pool_for(lookup.channel)
        if pool is None:
            return self.canonical()
        result = self._ask_pool(pool, session_id, lookup=lookup)
        return self._shown(result, pool, None, "")

    # -- helpers --------------------------------------------------------------------------

    def _ask_pool(self, pool: PoolConfig, session_id, *, new_session=False, lookup=None):
        if session_id is not None and pool.id in self.memo.by_pool:
            return self.memo.by_pool[pool.id]
        result = leasing.number_for_session(
            pool, session_id, lookup=lookup, new_session=new_session, now=getattr(self.context, "now", None)
        )
        if session_id is not None:
            self.memo.by_pool[pool.id] = result
        return result

    def _shown(self, result, pool: PoolConfig, source: SourceRule | None, swap_key) -> ShownNumber:
        if result is None:  # the session vanished (erased): nothing personal to show
            return self.canonical(swap_key)
        self._personalise()
        if result.is_dynamic:
            return ShownNumber(
                e164=result.e164,
                kind=NumberKind.DYNAMIC,
                display_format=self.config.display_format,
                source=source.source if source else None,
                pool_name=pool.name,
                number_id=result.number_id,
                lease_id=result.lease_id,
                reclaimed=result.reclaimed,
                personalised=True,
                swap_key=swap_key,
            )
        e164 = result.e164 or self.config.canonical_e164
        return ShownNumber(
            e164=e164,
            kind=NumberKind.OVERFLOW if e164 else NumberKind.NONE,
            display_format=self.config.display_format,
            source=source.source if source else None,
            pool_name=pool.name,
            number_id=result.number_id,
            personalised=True,
            swap_key=swap_key,
        )

    def _personalise(self) -> None:
        if self.context is not None:
            self.context.mark_personalised()

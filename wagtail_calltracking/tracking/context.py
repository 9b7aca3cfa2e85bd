"""``request.calltracking``: the visitor and session of the current request.

What is written, and when (the statements are in ``writes``; budgets in ``middleware.py``):

* repeat page view of a known visitor: one guarded INSERT after the response, no SELECT — the
  signed cookie carries the ids; the session's activity (throttled to once per
  ``ACTIVITY_WRITE_INTERVAL_SECONDS``) before it, with the page view in the same statement on
  PostgreSQL;
* new visitor or new session: ids reserved up front, the cookie set on the response, visitor +
  session + first page view after it (one statement on PostgreSQL);
* a session the template tag needs before it leases (``ensure_session()``), a campaign
  redirect's and a cache-safe page's: started before the response.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import time

from django.db import DatabaseError
from django.utils import timezone
from django.utils.cache import patch_cache_control, patch_vary_headers

from ..conf import ct_settings
from ..privacy import has_consent, minimise_ip
from . import writes
from .cookie import VisitorCookie, delete_cookie, read_cookie, write_cookie
from .ga import ga_ids_from_cookies
from .gate import request_is_trackable
from .geo import locate
from .landing import Landing, campaign_key, classify, parse_query
from .text import clean_text
from .useragent import parse_user_agent

logger = logging.getLogger(__name__)

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class TrackingContext:
    """Everything the middleware, the tag and the endpoint know about this visit."""

    def __init__(self, request, *, is_tracked: bool, consented: bool = True,
                 cookie: VisitorCookie | None = None, landing_query: str | None = None,
                 landing_referrer: str | None = None, landing_path: str | None = None):
        self.request = request
        self.is_tracked = is_tracked
        self.consented = consented
        self.cookie = cookie
        self.now = timezone.now()
        self._landing_query = landing_query
        self._landing_referrer = landing_referrer
        self._landing_path = landing_path
        self._landing: Landing | None = None
        self.page = None
        self.personalised = False
        self.cookie_dirty = False
        self.session_created = False
        self.visitor_created = False
        self._session_before_response = False
        self._session_suspect = False

        self.visitor_id = cookie.visitor_id if cookie else None
        self.session_id = cookie.session_id if cookie else None
        self.matched_source_id = cookie.matched_source_id if cookie else None
        if cookie and self._session_has_ended(cookie):
            self.session_id = None
            self.matched_source_id = None

    # --- construction -------------------------------------------------------------------

    @classmethod
    def inert(cls, request) -> TrackingContext:
        return cls(request, is_tracked=False, consented=False)

    @classmethod
    def for_request(cls, request) -> TrackingContext:
        """The middleware's context: the gate, consent and the cookie (no query)."""
        if not request_is_trackable(request):
            return cls.inert(request)
        if not has_consent(request):
            return cls(request, is_tracked=True, consented=False)
        return cls(request, is_tracked=True, cookie=read_cookie(request))

    @classmethod
    def for_landing(cls, request, *, search: str = "", referrer: str = "", path: str = "") -> TrackingContext:
        """The cache-safe endpoint's context: the landing reported by the browser
        (``location.search``, ``document.referrer``, ``location.pathname``) stands in for the
        request's own query string and referrer, which a CDN may have stripped."""
        path = clean_text(path, 2048) or "/"
        if not request_is_trackable(request, any_method=True, path=path):
            return cls.inert(request)
        landing = {
            "landing_query": clean_text(search, 4096).lstrip("?"),
            "landing_referrer": clean_text(referrer, 2048),
            "landing_path": path,
        }
        if not has_consent(request):
            # Nothing is stored, but the landing still chooses the number (a static source's).
            return cls(request, is_tracked=True, consented=False, **landing)
        return cls(request, is_tracked=True, cookie=read_cookie(request), **landing)

    # --- the landing --------------------------------------------------------------------

    @property
    def query_string(self) -> str:
        if self._landing_query is not None:
            return self._landing_query
        return self.request.META.get("QUERY_STRING", "")

    @property
    def referrer(self) -> str:
        if self._landing_referrer is not None:
            return self._landing_referrer
        return self.request.META.get("HTTP_REFERER", "")

    @property
    def path(self) -> str:
        return self._landing_path if self._landing_path is not None else (self.request.path_info or "/")

    @property
    def landing(self) -> Landing:
        if self._landing is None:
            own_hosts = (self._request_host(),)
            self._landing = classify(self.query_string, self.referrer, own_hosts, path=self.path)
        return self._landing

    def _request_host(self) -> str:
        try:
            return self.request.get_host().split(":")[0].lower()
        except Exception:  # DisallowedHost: classification must not fail on it
            return ""

    def _session_has_ended(self, cookie: VisitorCookie) -> bool:
        timeout = int(ct_settings.SESSION_TIMEOUT_MINUTES) * 60
        if time.time() - cookie.written_at > timeout:
            return True
        new_key = campaign_key(parse_query(self.query_string))
        return bool(new_key) and new_key != cookie.campaign_key

    @property
    def has_campaign(self) -> bool:
        return bool(campaign_key(parse_query(self.query_string)))

    # --- site ---------------------------------------------------------------------------

    @property
    def site(self):
        """The Wagtail site of the request (Wagtail caches it on the request)."""
        from wagtail.models import Site

        try:
            return Site.find_for_request(self.request)
        except Exception:
            return None

    # --- rows ---------------------------------------------------------------------------

    @property
    def can_store(self) -> bool:
        return self.is_tracked and self.consented

    def ensure_session(self) -> int | None:
        """The current session id, creating the visitor/session rows now if needed: the template
        tag needs the row before it leases a number (one statement on PostgreSQL)."""
        if not self.can_store:
            return None
        if self.session_id is None:
            self._start_session_now()
        return self.session_id

    def expect_callback(self) -> None:
        """This page asks for its number as soon as it loads (the cache-safe script): start its
        session before the response rather than after it, so that the call back finds it."""
        self._session_before_response = True

    def session_vanished(self) -> None:
        """The cookie's session was found gone (the tag's lease lookup): check it before the
        response, so that the visitor starts afresh with this response's cookie."""
        self._session_suspect = True

    @property
    def _check_session_now(self) -> bool:
        return self._session_suspect or self.session_id in writes.missing_sessions

    @property
    def page_view_is_the_only_write(self) -> bool:
        """The session exists (the cookie names it, or this request started it) and its activity
        write is not due: the page view is the only write, and it can wait for the response."""
        if self.session_id is None:
            return False
        if self.session_created:
            return True
        cookie = self.cookie
        if cookie is None or (not cookie.ga_captured and "_ga" in self.request.COOKIES):
            return False
        if self._check_session_now:
            return False
        return time.time() - cookie.written_at < int(ct_settings.ACTIVITY_WRITE_INTERVAL_SECONDS)

    # The visit's writes (the statements are in ``writes``). Each entry point writes what the
    # response depends on now and returns the rest as a callable to run after the response
    # (``writes.after_response``), or None.

    def record_page_view(self, response):
        """The middleware's page view of ``response``: a continuing session's page view and a new
        session's rows (ids reserved up front, the cookie set now) are returned for after the
        response; the throttled activity write happens now (the refreshed cookie depends on it,
        and it finds a purged or erased session), with the page view in the same statement."""
        return self._record(functools.partial(self._page_view_of, response), session_now=False)

    def record_landing(self):
        """A campaign redirect: its session starts now (the browser follows at once), no page view."""
        if self.session_id is not None:
            return None
        return self._record(None, session_now=True)

    def record_landing_page_view(self, title: str = ""):
        """The cache-safe endpoint's page view: the page the browser reports (a cached page
        never reaches the middleware), so the journey is complete behind a CDN too. The session
        starts now (its number may need a lease)."""
        return self._record(functools.partial(self._landing_page_view, title), session_now=True)

    def touch_session(self) -> None:
        """The throttled activity write alone (plus GA ids once they appear); forgets a session
        that no longer exists."""
        if self.session_id is None or self.session_created or self.cookie is None:
            return
        updates = self._activity_updates()
        if updates is not None and not self._touch(updates, None):
            self._forget_session()

    def _record(self, page_view, *, session_now: bool):
        if not self.can_store:
            return None
        if self.session_id is not None and not self.session_created:
            updates = self._activity_updates()
            if updates is None:
                return self._deferred_page_view(page_view)
            if self._touch(updates, page_view() if page_view else None):
                return None
            self._forget_session()  # purged or erased: start again as a new visitor
        if self.session_id is not None:  # started during this request (the tag leased)
            return self._deferred_page_view(page_view)
        if not session_now and not self._session_before_response:
            new = self._defer_session()
            if new is not None:
                return functools.partial(self._write_deferred_session, new, page_view)
        self._start_session_now(page_view() if page_view else None)
        return None

    def _deferred_page_view(self, page_view):
        if page_view is None:
            return None
        session_id = self.session_id

        def write():
            if not writes.insert_page_view(session_id, page_view()):
                # Purged or erased (or its deferred write failed): nothing dangling is written,
                # and the visitor's next request checks the session before its response.
                writes.missing_sessions.note(session_id)
                logger.debug("Page view not recorded: session %s no longer exists", session_id)

        return write

    # --- sessions -------------------------------------------------------------------------

    def _start_session_now(self, page_view: dict | None = None) -> None:
        new = self._new_session()
        new.fields.update(self._browser_fields())
        try:
            started = writes.start_session(new, page_view)
        except DatabaseError:
            logger.exception("Could not start a visitor session; serving the page untracked")
            self.is_tracked = False
            return
        self._session_started(new, started.visitor_id, started.session_id, started.visitor_created)

    def _defer_session(self) -> writes.NewSession | None:
        """Reserve the new rows' ids and set the cookie now; the rows follow the response.
        None when the database cannot reserve ids (the session is then started now)."""
        from ..models import Visitor, VisitorSession

        new_visitor_id = None
        if self.visitor_id is None:
            new_visitor_id = writes.reserve_id(Visitor)
            if new_visitor_id is None:
                return None
        session_id = writes.reserve_id(VisitorSession)
        if session_id is None:
            return None
        new = self._new_session()
        new.new_visitor_id, new.session_id = new_visitor_id, session_id
        self._session_started(new, self.visitor_id or new_visitor_id, session_id, new_visitor_id is not None)
        return new

    def _write_deferred_session(self, new: writes.NewSession, page_view) -> None:
        new.fields.update(self._browser_fields())
        started = writes.start_session(new, page_view() if page_view else None)
        if new.visitor_id is not None and started.visitor_created:
            # The cookie's visitor was erased or purged: the session belongs to a new one; the
            # cookie learns its id at the session's next activity write.
            logger.info("Visitor %s no longer exists: session %s starts visitor %s",
                        new.visitor_id, started.session_id, started.visitor_id)

    def _new_session(self) -> writes.NewSession:
        """The session's landing, source, site and GA ids: what its cookie and number depend on."""
        landing = self.landing
        fields = landing.session_fields()
        site = self.site
        # Source rules look at the landing (as the tag does before the session exists).
        source = self._match_source(fields, site)
        ga_client_id, ga_sessions = ga_ids_from_cookies(self.request.COOKIES)
        fields.update(
            site_id=getattr(site, "pk", None),
            started_at=self.now,
            last_activity_at=self.now,
            matched_source_id=getattr(source, "pk", None),
            ga_client_id=ga_client_id,
            ga_session_ids=ga_sessions,
        )
        return writes.NewSession(fields=fields, now=self.now, visitor_id=self.visitor_id)

    def _browser_fields(self) -> dict:
        """Browser, network and place, parsed once per session (after the response when the
        session's rows are deferred): nothing the response depends on."""
        request = self.request
        fields = parse_user_agent(request.META.get("HTTP_USER_AGENT", ""))
        ip = self._client_ip()
        fields["ip_address"] = minimise_ip(ip)
        fields.update(locate(request, ip))
        page = self.page if self._landing_path is None else None
        fields["landing_page_id"] = getattr(page, "pk", None)
        return fields

    def _session_started(self, new: writes.NewSession, visitor_id: int, session_id: int,
                         visitor_created: bool) -> None:
        fields = new.fields
        self.visitor_id = visitor_id
        self.session_id = session_id
        self.matched_source_id = fields["matched_source_id"]
        self.session_created = True
        self.visitor_created = visitor_created
        self.cookie = VisitorCookie(
            visitor_id=visitor_id,
            session_id=session_id,
            written_at=int(time.time()),
            campaign_key=self.landing.campaign_key,
            matched_source_id=fields["matched_source_id"],
            ga_captured=bool(fields["ga_client_id"]),
        )
        self.cookie_dirty = True

    def _match_source(self, fields: dict, site):
        try:
            from ..numbers.rules import match_source
            from ..numbers.selection import config_for_request
        except ImportError:
            return None
        from ..models import VisitorSession

        try:
            config = config_for_request(self.request)  # the tag's lookup, memoised per request
            if not config.rules:
                return None
            return match_source(VisitorSession(site=site, **fields), site, config=config)
        except Exception:
            logger.exception("Source matching failed; the session starts without a source")
            return None

    def _client_ip(self) -> str | None:
        from ipware import get_client_ip

        try:
            ip, _routable = get_client_ip(
                self.request,
                proxy_count=ct_settings.PROXY_COUNT,
                proxy_trusted_ips=list(ct_settings.TRUSTED_PROXIES or []) or None,
            )
        except Exception:
            return None
        return ip

    def _activity_updates(self) -> dict | None:
        """The session's throttled activity write, when due (plus GA ids once they appear)."""
        cookie = self.cookie
        cookies = self.request.COOKIES
        ga_client_id, ga_sessions = ("", {})
        if not cookie.ga_captured and "_ga" in cookies:
            ga_client_id, ga_sessions = ga_ids_from_cookies(cookies)
        due = time.time() - cookie.written_at >= int(ct_settings.ACTIVITY_WRITE_INTERVAL_SECONDS)
        due = due or self._check_session_now
        if not due and not ga_client_id:
            return None
        updates = {"last_activity_at": self.now}
        if not ga_client_id and due and "_ga" in cookies:
            # GA starts a new GA session after its own timeout: keep the latest ids.
            ga_client_id, ga_sessions = ga_ids_from_cookies(cookies)
        if ga_client_id:
            updates.update(ga_client_id=ga_client_id, ga_session_ids=ga_sessions)
        return updates

    def _touch(self, updates: dict, page_view: dict | None) -> bool:
        touched = writes.touch_session(self.session_id, updates, page_view)
        writes.missing_sessions.discard(self.session_id)
        if not touched.found:
            return False
        cookie = self.cookie
        cookie.written_at = int(time.time())
        cookie.ga_captured = cookie.ga_captured or bool(updates.get("ga_client_id"))
        if touched.visitor_id is not None and touched.visitor_id != self.visitor_id:
            # The session's visitor was created after the response (the cookie's was gone).
            self.visitor_id = cookie.visitor_id = touched.visitor_id
        self.cookie_dirty = True
        return True

    def _forget_session(self) -> None:
        """The cookie names a session that no longer exists (purged or erased)."""
        self.cookie = None
        self.visitor_id = None
        self.session_id = None
        self.matched_source_id = None

    # --- page views -----------------------------------------------------------------------

    def _page_view_of(self, response) -> dict:
        page = self.page
        if page is not None:
            title = getattr(page, "seo_title", "") or getattr(page, "title", "")
        else:
            title = _title_from_html(response)
        return self._page_view_values(
            self.request.path, self.request.META.get("QUERY_STRING", ""), getattr(page, "pk", None), title
        )

    def _landing_page_view(self, title: str) -> dict:
        return self._page_view_values(self.path, self.query_string, None, title)

    def _page_view_values(self, path, query, page_id, title) -> dict:
        return {
            "viewed_at": self.now,
            "path": clean_text(path, 2048) or "/",
            "query": clean_text(query, 2048),
            "page_id": page_id,
            "title": clean_text(title, 255),
        }

    # --- response -----------------------------------------------------------------------

    def mark_personalised(self) -> None:
        """The response carries per-visitor content: keep it out of shared caches."""
        self.personalised = True

    def apply_to_response(self, response) -> None:
        if self.personalised:
            patch_cache_control(response, private=True)
            patch_vary_headers(response, ("Cookie",))
        if not self.consented and self.is_tracked:
            if self.request.COOKIES.get(ct_settings.VISITOR_COOKIE_NAME):
                delete_cookie(response)  # consent withdrawn: forget the visitor
            return
        if self.cookie_dirty and self.cookie is not None:
            write_cookie(self.request, response, self.cookie)


def _title_from_html(response) -> str:
    if getattr(response, "streaming", False):
        return ""
    content = getattr(response, "content", b"")[:65536]
    match = _TITLE.search(content)
    if not match:
        return ""
    return html.unescape(match.group(1).decode(response.charset or "utf-8", "replace")).strip()


def get_tracking_context(request) -> TrackingContext:
    """The request's context; an inert one when the middleware did not run."""
    context = getattr(request, "calltracking", None)
    if context is None:
        context = TrackingContext.inert(request)
    return context


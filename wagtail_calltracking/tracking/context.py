"""``request.calltracking``: the visitor and session of the current request.

Query budget (tests enforce it):

* repeat page view of a known visitor: 1 INSERT (page view) + at most 1 UPDATE (session
  activity, throttled to once per ``ACTIVITY_WRITE_INTERVAL_SECONDS``); no SELECT — the
  signed cookie carries the ids;
* new visitor: 3 writes (visitor, session, page view) plus cached configuration reads;
* returning visitor starting a new session: 1 read (the visitor still exists) + 2 writes.

Rows are created lazily: ``ensure_session()`` is called by the middleware for a trackable
HTML response, by the template tag when it needs a lease, and by the cache-safe endpoint.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import re
import time

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.cache import patch_cache_control, patch_vary_headers

from ..conf import ct_settings
from ..privacy import has_consent, minimise_ip
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
        """The current session id, creating the visitor/session rows if needed."""
        if not self.can_store:
            return None
        if self.session_id is not None:
            return self.session_id
        try:
            with tracking_writes():
                self._start_session()
        except DatabaseError:
            logger.exception("Could not start a visitor session; serving the page untracked")
            self.is_tracked = False
            return None
        return self.session_id

    def _start_session(self) -> None:
        from ..models import Visitor, VisitorSession

        if self.visitor_id is not None and not Visitor.objects.filter(pk=self.visitor_id).exists():
            self.visitor_id = None  # erased or purged: start afresh
        if self.visitor_id is None:
            self.visitor_id = Visitor.objects.create(created_at=self.now).pk
            self.visitor_created = True

        landing = self.landing
        request = self.request
        fields = landing.session_fields()
        fields.update(parse_user_agent(request.META.get("HTTP_USER_AGENT", "")))
        ip = self._client_ip()
        fields["ip_address"] = minimise_ip(ip)
        fields.update(locate(request, ip))
        ga_client_id, ga_sessions = ga_ids_from_cookies(request.COOKIES)
        fields["ga_client_id"] = ga_client_id
        fields["ga_session_ids"] = ga_sessions
        site = self.site
        session = VisitorSession(
            visitor_id=self.visitor_id,
            site=site,
            started_at=self.now,
            last_activity_at=self.now,
            landing_page=self.page if self._landing_path is None else None,
            **fields,
        )
        session.matched_source = self._match_source(session, site)
        session.save(force_insert=True)
        self.session_id = session.pk
        self.matched_source_id = session.matched_source_id
        self.session_created = True
        self.cookie = VisitorCookie(
            visitor_id=self.visitor_id,
            session_id=session.pk,
            written_at=int(time.time()),
            campaign_key=landing.campaign_key,
            matched_source_id=session.matched_source_id,
            ga_captured=bool(ga_client_id),
        )
        self.cookie_dirty = True

    def _match_source(self, session, site):
        try:
            from ..numbers.rules import match_source
        except ImportError:
            return None
        try:
            return match_source(session, site)
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

    @property
    def needs_only_page_view(self) -> bool:
        """A continuing session whose activity write is not due: the common page view."""
        cookie = self.cookie
        if self.session_id is None or cookie is None or self.session_created:
            return False
        if not cookie.ga_captured and "_ga" in self.request.COOKIES:
            return False
        return time.time() - cookie.written_at < int(ct_settings.ACTIVITY_WRITE_INTERVAL_SECONDS)

    def touch_session(self) -> None:
        """Throttled activity write for a continuing session (plus GA ids once they appear)."""
        from ..models import VisitorSession

        cookie = self.cookie
        if self.session_created or cookie is None or self.session_id is None:
            return
        interval = int(ct_settings.ACTIVITY_WRITE_INTERVAL_SECONDS)
        ga_client_id, ga_sessions = ("", {})
        if not cookie.ga_captured and "_ga" in self.request.COOKIES:
            ga_client_id, ga_sessions = ga_ids_from_cookies(self.request.COOKIES)
        due = time.time() - cookie.written_at >= interval
        if not due and not ga_client_id:
            return
        updates = {"last_activity_at": self.now}
        if ga_client_id:
            updates.update(ga_client_id=ga_client_id, ga_session_ids=ga_sessions)
        elif due and "_ga" in self.request.COOKIES:
            # GA starts a new GA session after its own timeout: keep the latest ids.
            ga_client_id, ga_sessions = ga_ids_from_cookies(self.request.COOKIES)
            if ga_client_id:
                updates.update(ga_client_id=ga_client_id, ga_session_ids=ga_sessions)
        updated = VisitorSession.objects.filter(pk=self.session_id).update(**updates)
        if not updated:
            self._forget_session()
            return
        cookie.written_at = int(time.time())
        cookie.ga_captured = cookie.ga_captured or bool(ga_client_id)
        self.cookie_dirty = True

    def _forget_session(self) -> None:
        """The cookie names a session that no longer exists (purged or erased)."""
        self.cookie = None
        self.visitor_id = None
        self.session_id = None
        self.matched_source_id = None

    def record_page_view(self, response) -> None:
        """The page view of this request: one INSERT (see :meth:`_insert_page_view`)."""
        page = self.page
        if page is not None:
            title = getattr(page, "seo_title", "") or getattr(page, "title", "")
        else:
            title = _title_from_html(response)
        self._insert_page_view(
            path=self.request.path,
            query=self.request.META.get("QUERY_STRING", ""),
            page_id=getattr(page, "pk", None),
            title=title,
        )

    def record_landing_page_view(self, title: str = "") -> None:
        """The cache-safe endpoint's page view: the page the browser reports (a cached page
        never reaches the middleware), so the journey is complete behind a CDN too."""
        self._insert_page_view(path=self.path, query=self.query_string, page_id=None, title=title)

    def _insert_page_view(self, *, path, query, page_id, title) -> None:
        """One INSERT, guarded so a purged session never leaves a dangling row."""
        from ..models import PageView

        if self.session_id is None:
            return
        values = {
            "session_id": self.session_id,
            "viewed_at": self.now,
            "path": clean_text(path, 2048) or "/",
            "query": clean_text(query, 2048),
            "page_id": page_id,
            "title": clean_text(title, 255),
        }
        if self.session_created:
            PageView.objects.create(**values)
            return
        if not _insert_if_session_exists(PageView, values):
            # The session was deleted under us: start again as a new visitor.
            self._forget_session()
            self.ensure_session()
            if self.session_id is not None:
                values["session_id"] = self.session_id
                PageView.objects.create(**values)

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


_PAGE_VIEW_COLUMNS = ("session_id", "viewed_at", "path", "query", "page_id", "title")


@functools.lru_cache(maxsize=8)
def _guarded_insert_sql(model, vendor: str, async_commit: bool) -> tuple[str, tuple]:
    """The SQL of :func:`_insert_if_session_exists`, built once per database and mode."""
    from ..models import VisitorSession

    opts = model._meta
    qn = connection.ops.quote_name
    fields = tuple(opts.get_field(name) for name in _PAGE_VIEW_COLUMNS)
    cast = vendor == "postgresql"
    columns = ", ".join(qn(field.column) for field in fields)
    placeholders = ", ".join(
        f"CAST(%s AS {field.db_type(connection)})" if cast else "%s" for field in fields
    )
    # Identifiers come from model metadata, values are parameters.
    sql = (
        f"INSERT INTO {qn(opts.db_table)} ({columns}) "  # noqa: S608
        f"SELECT {placeholders} "
        f"WHERE EXISTS (SELECT 1 FROM {qn(VisitorSession._meta.db_table)} WHERE {qn('id')} = %s)"
    )
    if async_commit:
        # The statement is its own transaction: commit it asynchronously (see
        # tracking_writes) without the round trips of BEGIN/SET LOCAL/COMMIT.
        sql += " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
    return sql, fields


def _insert_if_session_exists(model, values: dict) -> bool:
    """INSERT … SELECT … WHERE EXISTS(session): a single statement that inserts nothing when
    the session is gone (FK checks are deferred to commit, too late to recover)."""
    async_commit = connection.vendor == "postgresql" and transaction.get_autocommit()
    sql, fields = _guarded_insert_sql(model, connection.vendor, async_commit)
    params = [field.get_db_prep_save(values[field.attname], connection) for field in fields]
    params.append(values["session_id"])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


@contextlib.contextmanager
def tracking_writes():
    """Group the writes of one page view into one transaction.

    Outside any transaction (autocommit, the normal case) this saves a commit per write, and
    on PostgreSQL the commit is asynchronous (``synchronous_commit = off`` for this transaction
    only): page views are telemetry, and waiting for a WAL flush on every page view would
    dominate the middleware's cost. A database crash can lose the last fraction of a second
    of page views, never a call. Inside the project's own transaction (ATOMIC_REQUESTS) it
    changes nothing: that transaction's durability is not ours to relax.
    """
    if not transaction.get_autocommit():
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def get_tracking_context(request) -> TrackingContext:
    """The request's context; an inert one when the middleware did not run."""
    context = getattr(request, "calltracking", None)
    if context is None:
        context = TrackingContext.inert(request)
    return context


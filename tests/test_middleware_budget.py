"""The hot path's statement budget, before and after the response (``middleware.py`` and
docs/internals.md state it), and the writes that wait for the response.

Requests go through Django's WSGI handler the way a WSGI server drives it — call the
application, send the body, then ``close()`` — in autocommit, as in production, so the
statements counted are exactly those a live site runs (no test transaction, no savepoints).
"""

import logging
import time
from dataclasses import dataclass, field

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core import signing
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from wagtail_calltracking.models import Lease, PageView, Visitor, VisitorSession
from wagtail_calltracking.tracking import writes
from wagtail_calltracking.tracking.cookie import SALT, VisitorCookie

from .conftest import BROWSER_UA
from .factories import make_session
from .numbers_fixtures import *  # noqa: F403 (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.urls")]

COOKIE = "ct_visitor"
PG = "postgresql"


@pytest.fixture(autouse=True)
def _keep_the_connection_open():
    """As Django's test client does: requests do not close the test's database connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _fresh_reservations():
    writes.forget_reserved_ids()
    yield
    writes.forget_reserved_ids()


def statements(ctx):
    """The statements run, without the site lookup a new session needs on a page Wagtail does
    not serve (Wagtail's serve view has looked the site up already)."""
    return [q["sql"] for q in ctx.captured_queries if 'FROM "wagtailcore_site"' not in q["sql"]]


def without_reservations(sql_list):
    """Without the id reservations (one per block of new visitors)."""
    return [s for s in sql_list if "nextval" not in s and "sqlite_sequence" not in s
            and s.split()[0] not in ("BEGIN", "COMMIT")]


_ROWS = ('"wagtail_calltracking_visitor"', '"wagtail_calltracking_visitorsession"', '"wagtail_calltracking_pageview"')


def on_tracking_rows(sql_list):
    """Statements on the visitor, session and page view tables."""
    return [s for s in sql_list if any(table in s for table in _ROWS)]


def kinds(sql_list):
    """First keyword of each statement: BEGIN, INSERT, UPDATE, WITH, SELECT, COMMIT…"""
    return [sql.split()[0].upper() for sql in sql_list]


@dataclass
class Served:
    status: int
    body: bytes
    cookies: dict
    #: Statements run until the response was handed to the server / when it was closed.
    before: list = field(default_factory=list)
    after: list = field(default_factory=list)
    #: Rows present when the response was handed over (before close).
    page_views_at_response: int = 0
    response: object = None


class Server:
    """A WSGI server in miniature: it keeps the visitor's cookies like a browser."""

    def __init__(self, user_agent=BROWSER_UA, **headers):
        self.handler = WSGIHandler()
        self.factory = RequestFactory(HTTP_USER_AGENT=user_agent, **headers)
        self.cookies = {}

    def get(self, path, *, consume=True, close=True, **extra) -> Served:
        path, _, query = path.partition("?")
        environ = self.factory._base_environ(PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD="GET", **extra)
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        served = Served(status=0, body=b"", cookies={})

        def start_response(status, headers, exc_info=None):
            served.status = int(status.split()[0])
            for name, value in headers:
                if name.lower() == "set-cookie":
                    key, _, rest = value.strip().partition("=")
                    served.cookies[key] = rest.split(";", 1)[0]

        with CaptureQueriesContext(connection) as before:
            response = self.handler(environ, start_response)
            if consume:
                served.body = b"".join(response)
        served.before = statements(before)
        served.response = response
        served.page_views_at_response = PageView.objects.count()
        self.cookies.update({k: v for k, v in served.cookies.items() if v not in ("", '""')})
        if close:
            self.close(served)
        return served

    def close(self, served):
        with CaptureQueriesContext(connection) as after:
            served.response.close()
        served.after = statements(after)


def cookie_value(raw) -> VisitorCookie:
    return VisitorCookie.decode(signing.get_cookie_signer(salt=COOKIE + SALT).unsign(raw))


def age(server, seconds):
    cookie = cookie_value(server.cookies[COOKIE])
    cookie.written_at -= seconds
    server.cookies[COOKIE] = signing.get_cookie_signer(salt=COOKIE + SALT).sign(cookie.encode())


@pytest.fixture
def warm(site):
    """Warm the caches that are not per visitor (site lookup, number configuration) and the id
    reservations, as on a live site."""
    Server().get("/plain/")
    return site


# --- the budget ---------------------------------------------------------------------------------


def test_repeat_page_view_writes_one_guarded_insert_after_the_response(warm):
    server = Server()
    server.get("/plain/")
    served = server.get("/form/")
    assert served.before == []
    assert kinds(served.after) == ["INSERT"] and "EXISTS" in served.after[0]
    if connection.vendor == PG:
        assert "synchronous_commit" in served.after[0]  # asynchronous commit, inside the statement
    assert COOKIE not in served.cookies  # nothing to refresh


def test_activity_write_when_due_is_before_the_response_with_the_page_view(warm):
    server = Server()
    server.get("/plain/")
    session = VisitorSession.objects.get(pk=cookie_value(server.cookies[COOKIE]).session_id)
    age(server, 61)
    served = server.get("/form/")
    if connection.vendor == PG:
        assert kinds(served.before) == ["WITH"]  # UPDATE … RETURNING feeding the INSERT
        assert "synchronous_commit" in served.before[0]
    else:
        assert kinds(served.before) == ["UPDATE", "INSERT"]
    assert served.after == []
    assert COOKIE in served.cookies  # refreshed: the database confirmed the session
    assert served.page_views_at_response == PageView.objects.count()
    assert VisitorSession.objects.get(pk=session.pk).last_activity_at > session.last_activity_at
    assert COOKIE not in server.get("/form/").cookies  # throttled again


def test_new_visitor_is_one_statement_after_the_response(warm):
    served = Server().get("/plain/?utm_source=google&utm_medium=cpc")
    assert without_reservations(served.before) == []
    if connection.vendor == PG:
        assert kinds(served.after) == ["WITH"]  # visitor + session + page view
        assert "synchronous_commit" in served.after[0]
    else:
        assert kinds(served.after) == ["BEGIN", "INSERT", "INSERT", "INSERT", "COMMIT"]
    cookie = cookie_value(served.cookies[COOKIE])
    session = VisitorSession.objects.get(pk=cookie.session_id)
    assert session.visitor_id == cookie.visitor_id and session.channel == "paid_search"
    assert list(session.page_views.values_list("path", flat=True)) == ["/plain/"]


def test_ids_are_reserved_once_per_block_of_new_visitors(warm):
    def reservations(served):
        return [s for s in served.before if "nextval" in s or "UPDATE sqlite_sequence" in s]

    writes.forget_reserved_ids()
    counts = []
    for _ in range(writes.ID_BLOCK_SIZE):
        served = Server().get("/plain/")
        counts.append(len(reservations(served)))
        assert served.page_views_at_response == PageView.objects.count() - 1
    # One reservation per table (visitors, sessions) for the whole block, by its first visitor.
    assert counts == [2] + [0] * (writes.ID_BLOCK_SIZE - 1)
    served = Server().get("/plain/")
    assert len(reservations(served)) == 2  # the next block
    cookie = cookie_value(served.cookies[COOKIE])
    assert VisitorSession.objects.filter(pk=cookie.session_id, visitor_id=cookie.visitor_id).exists()


def test_returning_visitor_new_session_is_one_statement_after_the_response(warm):
    server = Server()
    server.get("/plain/")
    visitor_id = cookie_value(server.cookies[COOKIE]).visitor_id
    age(server, 3600)
    served = server.get("/plain/")
    assert without_reservations(served.before) == []
    if connection.vendor == PG:
        assert kinds(served.after) == ["WITH"]
    else:  # the visitor kept (an INSERT … WHERE NOT EXISTS that inserts nothing), session, view
        assert kinds(served.after) == ["BEGIN", "INSERT", "INSERT", "INSERT", "COMMIT"]
    assert Visitor.objects.count() == 2  # the warm-up's and this one: no new visitor
    assert VisitorSession.objects.filter(visitor_id=visitor_id).count() == 2


@pytest.mark.parametrize("path, headers", [
    ("/plain/", {"HTTP_USER_AGENT": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}),
    ("/plain/", {"HTTP_SEC_PURPOSE": "prefetch"}),
    ("/api/data.json", {}),
    ("/broken/", {}),
    ("/static/app.css", {}),
])
def test_skipped_requests_cost_nothing_before_or_after(warm, path, headers):
    server = Server(**{k: v for k, v in headers.items() if k != "HTTP_USER_AGENT"},
                    user_agent=headers.get("HTTP_USER_AGENT", BROWSER_UA))
    served = server.get(path)
    assert on_tracking_rows(served.before + served.after) == []
    assert not [s for s in served.before + served.after if "sqlite_sequence" in s or "nextval" in s]


def test_campaign_redirect_starts_its_session_before_answering(warm):
    """The browser follows a redirect at once: its session must exist when it arrives."""
    server = Server()
    served = server.get("/go/?utm_source=flyer&utm_medium=print")
    assert served.status == 302
    assert kinds(served.before) == (["WITH"] if connection.vendor == PG else ["BEGIN", "INSERT", "INSERT", "COMMIT"])
    assert served.after == []
    session = VisitorSession.objects.get(pk=cookie_value(served.cookies[COOKIE]).session_id)
    assert session.channel == "offline" and not session.page_views.exists()
    server.get("/plain/")
    assert session.page_views.count() == 1


def test_new_visitor_with_a_pool_number_has_its_session_before_the_lease(warm, site_settings, all_visitors_pool):
    page_views = PageView.objects.count()
    served = Server().get("/number/")
    cookie = cookie_value(served.cookies[COOKIE])
    lease = Lease.objects.get()
    assert lease.session_id == cookie.session_id
    assert lease.number.number.encode() in served.body or lease.number.number[-4:].encode() in served.body
    # Before the response: the session (one statement on PostgreSQL) and the lease; after it:
    # the page view alone.
    session_writes = [s for s in served.before if "visitorsession" in s.lower() and not s.startswith("SELECT")]
    if connection.vendor == PG:
        assert len(session_writes) == 1 and session_writes[0].startswith("WITH")
    assert served.page_views_at_response == page_views
    assert kinds(served.after) == ["INSERT"]
    assert PageView.objects.get(session_id=cookie.session_id).path == "/number/"


def test_cache_safe_page_starts_its_session_before_answering(warm, site_settings, all_visitors_pool):
    """Its script asks for the visitor's number as soon as the page loads."""
    server = Server()
    served = server.get("/cache-safe/")
    cookie = cookie_value(served.cookies[COOKIE])
    assert VisitorSession.objects.filter(pk=cookie.session_id).exists()
    # Session and page view before the response: one statement on PostgreSQL.
    assert kinds(on_tracking_rows(served.before)) == (["WITH"] if connection.vendor == PG else ["INSERT"] * 3)
    assert served.after == []


# --- after the response -------------------------------------------------------------------------


def test_the_response_is_complete_before_the_write_and_the_write_happens_on_close(warm):
    server = Server()
    served = server.get("/plain/?utm_source=newsletter&utm_medium=email", close=False)
    # Handed over: the whole body, the cookie naming the rows to come — and no row yet.
    assert served.status == 200 and served.body.endswith(b"</html>")
    cookie = cookie_value(served.cookies[COOKIE])
    assert not VisitorSession.objects.filter(pk=cookie.session_id).exists()
    assert not Visitor.objects.filter(pk=cookie.visitor_id).exists()
    assert served.page_views_at_response == PageView.objects.count() == 1  # the warm-up's
    server.close(served)
    session = VisitorSession.objects.get(pk=cookie.session_id)
    assert session.visitor_id == cookie.visitor_id and session.channel == "email"
    assert session.page_views.get().title == "Plain & simple"
    # The browser, user agent and place were parsed for the row after the response.
    assert session.browser == "Chrome" and session.ip_address == "127.0.0.1"

    served = server.get("/form/", close=False)
    assert not PageView.objects.filter(path="/form/").exists()
    server.close(served)
    assert PageView.objects.filter(path="/form/", session_id=cookie.session_id, title="Form").exists()


def test_streaming_response_is_recorded_once_it_is_sent(warm):
    server = Server()
    server.get("/plain/")
    served = server.get("/stream/", consume=False, close=False)
    assert served.before == []
    body = b"".join(served.response)
    assert body == b"<html><title>Stream</title></html>"
    assert not PageView.objects.filter(path="/stream/").exists()
    server.close(served)
    assert PageView.objects.get(path="/stream/").title == ""


def test_a_failing_write_is_logged_and_never_affects_the_response(warm, caplog):
    server = Server()
    served = server.get("/plain/", close=False)
    cookie = cookie_value(served.cookies[COOKIE])
    # Between the response and its close, the reserved session id gets taken (as after a
    # sequence reset): the deferred INSERT fails for real.
    make_session(pk=cookie.session_id)
    with caplog.at_level(logging.ERROR, logger="wagtail_calltracking.tracking.writes"):
        server.close(served)  # does not raise
    assert served.status == 200 and served.body
    assert "could not record a visit after the response" in caplog.text
    assert PageView.objects.filter(session_id=cookie.session_id).count() == 0
    # The reservations were dropped: the next new visitor gets fresh ids and is recorded.
    served = Server().get("/plain/")
    assert VisitorSession.objects.filter(pk=cookie_value(served.cookies[COOKIE]).session_id).exists()


def test_a_deferred_session_whose_visitor_was_erased_in_between_gets_a_new_visitor(warm):
    server = Server()
    server.get("/plain/")
    old_visitor = cookie_value(server.cookies[COOKIE]).visitor_id
    age(server, 3600)  # a new session of the same visitor
    served = server.get("/plain/?utm_source=bing&utm_medium=cpc", close=False)
    cookie = cookie_value(served.cookies[COOKIE])
    assert cookie.visitor_id == old_visitor
    Visitor.objects.filter(pk=old_visitor).delete()  # erased before the write
    server.close(served)
    session = VisitorSession.objects.get(pk=cookie.session_id)
    assert session.visitor_id != old_visitor and session.channel == "paid_search"
    assert not Visitor.objects.filter(pk=old_visitor).exists()  # never resurrected
    # The session's next activity write tells the cookie its visitor.
    age(server, 61)
    served = server.get("/form/")
    assert cookie_value(served.cookies[COOKIE]).visitor_id == session.visitor_id


def test_a_session_purged_between_the_response_and_the_write_gets_no_row(warm):
    server = Server()
    server.get("/plain/")
    session_id = cookie_value(server.cookies[COOKIE]).session_id
    served = server.get("/form/", close=False)
    VisitorSession.objects.filter(pk=session_id).delete()
    server.close(served)
    assert not PageView.objects.filter(session_id=session_id).exists()
    # The next request of this visitor (same process) checks the session before answering.
    served = server.get("/form/")
    new = cookie_value(served.cookies[COOKIE])
    assert new.session_id != session_id and VisitorSession.objects.filter(pk=new.session_id).exists()


def test_reserved_ids_never_meet_rows_written_meanwhile(warm):
    server = Server()
    served = server.get("/plain/", close=False)
    cookie = cookie_value(served.cookies[COOKIE])
    others = [make_session() for _ in range(3)]  # the ORM inserts while the write is pending
    assert cookie.session_id not in {s.pk for s in others}
    assert cookie.visitor_id not in {s.visitor_id for s in others}
    server.close(served)
    assert VisitorSession.objects.filter(pk=cookie.session_id, visitor_id=cookie.visitor_id).exists()


def test_atomic_requests_project(warm, site_settings, all_visitors_pool):
    """Under ATOMIC_REQUESTS the tag's session joins the view's transaction (a savepoint: a
    failure cannot abort it); the page view follows the response; a failing view leaves no
    row behind."""
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    try:
        server = Server()
        served = server.get("/number/")
        cookie = cookie_value(served.cookies[COOKIE])
        assert Lease.objects.get().session_id == cookie.session_id
        assert PageView.objects.filter(session_id=cookie.session_id).count() == 1
        assert not any("synchronous_commit" in s for s in served.before if "visitorsession" in s.lower())

        sessions = VisitorSession.objects.count()
        failed = Server().get("/number-then-error/")
        assert failed.status == 500
        assert VisitorSession.objects.count() == sessions and Lease.objects.count() == 1
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = False


# --- ASGI ---------------------------------------------------------------------------------------


def serve_asgi(path, cookie_header=""):
    """One request through Django's ASGI handler; the page views present when the last body
    message was sent, and the messages."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1234), "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"user-agent", BROWSER_UA.encode())]
        + ([(b"cookie", cookie_header.encode())] if cookie_header else []),
    }
    messages, at_last_body = [], {}

    async def run():
        done = __import__("asyncio").Event()

        async def receive():
            if not messages:
                messages.append({"type": "http.request.sent"})
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            messages.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                at_last_body["page_views"] = await sync_to_async(PageView.objects.count)()
                at_last_body["when"] = time.monotonic()

        await ASGIHandler()(scope, receive, send)
        done.set()

    async_to_sync(run)()
    start = next(m for m in messages if m["type"] == "http.response.start")
    cookies = {}
    for name, value in start["headers"]:
        if name.lower() == b"set-cookie":
            key, _, rest = value.decode().strip().partition("=")
            cookies[key] = rest.split(";", 1)[0]
    return start["status"], cookies, at_last_body["page_views"]


def test_asgi_writes_after_the_final_body_message(warm):
    before = PageView.objects.count()
    status, cookies, page_views_at_response = serve_asgi("/plain/")
    assert status == 200
    assert page_views_at_response == before  # the visitor had the whole page first
    cookie = cookie_value(cookies[COOKIE])
    assert PageView.objects.filter(session_id=cookie.session_id).count() == 1

    # A repeat view under ASGI: no thread hop, the INSERT after the response.
    status, cookies, page_views_at_response = serve_asgi("/form/", f"{COOKIE}={signing.get_cookie_signer(salt=COOKIE + SALT).sign(cookie.encode())}")
    assert status == 200 and page_views_at_response == before + 1
    assert PageView.objects.filter(session_id=cookie.session_id, path="/form/").count() == 1

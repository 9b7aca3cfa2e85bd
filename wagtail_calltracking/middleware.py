"""Visitor and session capture: the hot path, run on every request.

Place it after ``SessionMiddleware`` and ``AuthenticationMiddleware`` (a system check says so).

Query budget — statements per request (enforced by tests/test_middleware_budget.py). *Before*
runs while the visitor waits; *after* runs once the response has been handed to the server
(on its close: ``tracking.writes.after_response``):

=============================================  ==========================  ======================
request                                        before the response         after the response
=============================================  ==========================  ======================
skipped (bots, prefetch, non-GET/HEAD, admin,  0                           0
static/media, exclusions, non-HTML, errors)
repeat page view of a known visitor            0                           1 (guarded INSERT)
… when its activity write is due (at most      PostgreSQL 1 (UPDATE +      0
once per ``ACTIVITY_WRITE_INTERVAL_SECONDS``)  INSERT), SQLite 2
new visitor / new session (no lease)           0 (+1 per 32 new visitors:  PostgreSQL 1 (visitor +
                                               ids reserved in blocks)     session + page view),
                                                                           SQLite 3 in one
                                                                           transaction
new visitor whose page shows a pool number     PostgreSQL 1 (visitor +     1 (page view)
                                               session), SQLite 2 in one
                                               transaction; then the lease
campaign redirect (30x with campaign           as a new visitor's session  0
parameters) / cache-safe page                  (the browser comes back at
                                               once)
=============================================  ==========================  ======================

Plus cached configuration reads (site, number configuration) on a cold cache. Anonymous
visitors never get a Django session: identity is a signed first-party cookie. A write that
fails is logged and never affects the response.
"""

from __future__ import annotations

import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.db import DatabaseError

from .tracking.context import TrackingContext
from .tracking.writes import after_response

logger = logging.getLogger(__name__)


def _is_trackable_response(response) -> bool:
    if not 200 <= response.status_code < 300:
        return False
    content_type = response.get("Content-Type", "")
    return content_type.startswith(("text/html", "application/xhtml+xml"))


def _is_campaign_redirect(context: TrackingContext, response) -> bool:
    # A landing URL that redirects (trailing slash, vanity path, Wagtail redirect) may lose its
    # parameters on the way: record the landing now, the page views follow.
    return response.status_code in (301, 302, 303, 307, 308) and context.has_campaign


class CallTrackingMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(self.get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        context = TrackingContext.for_request(request)
        request.calltracking = context
        response = self.get_response(request)
        return self.finish(context, response)

    async def __acall__(self, request):
        context = TrackingContext.for_request(request)
        request.calltracking = context
        response = await self.get_response(request)
        if _needs_database_now(context, response):
            return await sync_to_async(self.finish, thread_sensitive=True)(context, response)
        if context.can_store or context.personalised or context.is_tracked:
            # Nothing to read or write before the response (the page view waits for it):
            # no thread hop.
            return self.finish(context, response)
        return response

    def process_template_response(self, request, response):
        """Remember the Wagtail page being served (for the page view and landing page)."""
        context = getattr(request, "calltracking", None)
        if context is not None and context.can_store and response.context_data:
            page = response.context_data.get("page")
            if page is not None and hasattr(page, "specific_class"):
                context.page = page
        return response

    def finish(self, context: TrackingContext, response):
        if context.can_store:
            deferred = None
            try:
                if _is_trackable_response(response):
                    deferred = context.record_page_view(response)
                elif _is_campaign_redirect(context, response):
                    deferred = context.record_landing()
            except DatabaseError:
                # Tracking must never break the page.
                logger.exception("Call tracking could not record a page view")
            if deferred is not None:
                after_response(response, deferred)
        if context.is_tracked or context.personalised:
            context.apply_to_response(response)
        return response


def _needs_database_now(context: TrackingContext, response) -> bool:
    """Whether recording this response reads or writes before it is returned."""
    if not context.can_store:
        return False
    if _is_trackable_response(response):
        return not context.page_view_is_the_only_write
    return _is_campaign_redirect(context, response) and context.session_id is None

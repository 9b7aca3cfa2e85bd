"""Visitor and session capture: the hot path, run on every request.

Place it after ``SessionMiddleware`` and ``AuthenticationMiddleware`` (a system check says so).

Query budget (enforced by tests/test_middleware_queries.py):

* skipped requests (bots, prefetch, non-GET/HEAD, admin, static/media, exclusions, non-HTML
  and error responses): 0 queries;
* repeat page view of a known visitor: 1 INSERT + at most 1 throttled UPDATE;
* new visitor: at most 3 writes (visitor, session, page view).

All writes happen after the view has produced a trackable response (a page view), or earlier
when the template tag needs a session to lease a number. Anonymous visitors never get a
Django session: identity is a signed first-party cookie.
"""

from __future__ import annotations

import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.db import DatabaseError

from .tracking.context import TrackingContext, tracking_writes

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
        if context.can_store or context.personalised or context.is_tracked:
            return await sync_to_async(self.finish, thread_sensitive=True)(context, response)
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
            try:
                if context.needs_only_page_view:
                    self.record(context, response)  # one statement: the page view
                else:
                    with tracking_writes():
                        self.record(context, response)
            except DatabaseError:
                # Tracking must never break the page.
                logger.exception("Call tracking could not record a page view")
        if context.is_tracked or context.personalised:
            context.apply_to_response(response)
        return response

    def record(self, context: TrackingContext, response) -> None:
        if _is_trackable_response(response):
            if context.session_id is not None:
                context.touch_session()  # may find the session gone (purged, erased)
            if context.session_id is None:
                context.ensure_session()
            context.record_page_view(response)
        elif _is_campaign_redirect(context, response) and context.session_id is None:
            context.ensure_session()

"""Rows and users for the admin tests: a visitor with several visits and page views, calls
attributed to them (with their touches), and admin users holding one grant each."""

from __future__ import annotations

import datetime
import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from wagtail_calltracking.models import (
    Call,
    CallResult,
    CallTouch,
    Channel,
    Confidence,
    Manager,
    PageView,
    TouchModel,
    Visitor,
)

from .factories import make_call, make_number, make_pool, make_session

_users = itertools.count(1)

VIEW_CALLS = ["wagtail_calltracking.view_call"]
TAG_CALLS = ["wagtail_calltracking.view_call", "wagtail_calltracking.tag_call"]
CONFIGURE = [
    f"wagtail_calltracking.{action}_{model}"
    for model in ("source", "trackingnumber", "numberpool", "manager")
    for action in ("add", "change", "delete")
]


def make_admin_user(permissions=(), *, superuser=False, username=None):
    """A Wagtail editor (admin access) in a group holding ``permissions`` ("app.codename")."""
    User = get_user_model()
    username = username or f"editor{next(_users)}"
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", "password")
    user = User.objects.create_user(username, f"{username}@example.com", "password")
    group = Group.objects.create(name=f"group-{username}")
    codenames = ["wagtailadmin.access_admin", *permissions]
    for codename in codenames:
        app_label, name = codename.split(".")
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=name)
        )
    user.groups.add(group)
    return user


def touches_for(call, session, model_sessions=None):
    """Write the three attribution touches of ``call`` as the attribution code would."""
    model_sessions = model_sessions or {}
    rows = []
    for model in TouchModel.values:
        touch_session = model_sessions.get(model, session)
        touch = CallTouch(call=call, model=model, session=touch_session)
        if touch_session is not None:
            for name in ("channel", "source", "medium", "campaign", "keyword", "landing_path"):
                setattr(touch, name, getattr(touch_session, name) or "")
        rows.append(touch)
    CallTouch.objects.bulk_create(rows)


def journey_call(*, pages=3, started_at=None, visits=2, caller="+13125550100", **call_kwargs):
    """A visitor who came from organic search, then from a paid-search ad (keyword "plumber",
    ``pages`` page views) and called the pool number it was shown: returns the call."""
    now = started_at or timezone.now()
    visitor = Visitor.objects.create()
    sessions = []
    for index in range(visits - 1):
        sessions.append(
            make_session(
                visitor,
                started_at=now - datetime.timedelta(days=visits - index),
                channel=Channel.ORGANIC_SEARCH,
                source="google",
                medium="organic",
                landing_path="/drain-cleaning/",
            )
        )
    paid = make_session(
        visitor,
        started_at=now - datetime.timedelta(minutes=pages + 5),
        channel=Channel.PAID_SEARCH,
        source="google",
        medium="cpc",
        campaign="spring-plumbing",
        term="plumber",
        keyword="plumber",
        gclid="TEST-GCLID",
        landing_path="/",
        landing_query="utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST-GCLID",
        ip_address="203.0.113.7",
        user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Chrome/126.0 Safari/537.36",
        browser="Chrome",
        browser_version="126",
        os="Mac OS X",
        os_version="14",
        device_type="desktop",
        country="US",
        region="Illinois",
        city="Chicago",
    )
    sessions.append(paid)
    PageView.objects.bulk_create(
        PageView(
            session=paid,
            viewed_at=paid.started_at + datetime.timedelta(seconds=40 * index),
            path="/" if index == 0 else f"/services/page-{index}/",
            title="Acme Plumbing" if index == 0 else f"Service {index}",
        )
        for index in range(pages)
    )
    pool = call_kwargs.pop("pool", None) or make_pool(size=2)
    number = call_kwargs.pop("tracking_number", None) or pool.numbers.first()
    call_kwargs.setdefault("result", CallResult.ANSWERED)
    call_kwargs.setdefault("talk_seconds", 95)
    call_kwargs.setdefault("ring_seconds", 7)
    call = make_call(
        from_number=caller,
        to_number=number.number,
        tracking_number=number,
        started_at=now,
        session=paid,
        visitor=visitor,
        confidence=Confidence.EXACT,
        gclid=paid.gclid,
        **call_kwargs,
    )
    touches_for(call, paid, {TouchModel.FIRST: sessions[0]})
    return call


def simple_call(*, channel=Channel.PAID_SEARCH, utm_source="google", medium="", campaign="",
                keyword="", started_at=None, result=CallResult.ANSWERED, **kwargs):
    """A call with the same three touches and no journey rows (fast, for listings and
    reports). ``source`` (a Source) and other Call fields go through ``kwargs``."""
    call = make_call(started_at=started_at or timezone.now(), result=result, **kwargs)
    CallTouch.objects.bulk_create(
        CallTouch(call=call, model=model, channel=channel, source=utm_source, medium=medium,
                  campaign=campaign, keyword=keyword)
        for model in TouchModel.values
    )
    return call


def make_manager(name="Alice", **kwargs):
    return Manager.objects.create(name=name, **kwargs)


__all__ = [
    "CONFIGURE",
    "TAG_CALLS",
    "VIEW_CALLS",
    "Call",
    "journey_call",
    "make_admin_user",
    "make_manager",
    "make_number",
    "simple_call",
]

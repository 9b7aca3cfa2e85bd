"""Erasure (right to be forgotten) by caller number or visitor id, across every table and the
raw webhook log, from real journeys and calls (middleware, tag, demo telephony provider)."""

import io
import json

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from werkzeug import Response

from wagtail_calltracking.models import (
    Call,
    CallEvent,
    CallTouch,
    CRMEndpoint,
    Delivery,
    DeliveryStatus,
    Lease,
    LeaseReleaseReason,
    PageView,
    TrackingNumber,
    Visitor,
    VisitorSession,
    WebhookEvent,
    WebhookEventStatus,
)
from wagtail_calltracking.privacy import ErasureError, erase_personal_data

from .admin_fixtures import make_admin_user
from .privacy_fixtures import (
    CALLER,
    NEWSPAPER_NUMBER,
    OTHER_CALLER,
    PAID_LANDING,
    ring,
    shown_number,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_caches")]

CALLER_DIGITS = CALLER[2:]  # 3125550177: what every provider's spelling of the number contains


def organic_then_paid_visit(client):
    """A visitor who came from organic search, then from an ad; returns the number shown."""
    client.get("/", HTTP_REFERER="https://www.google.com/")
    client.get("/?utm_source=google&utm_medium=organic")
    response = client.get(PAID_LANDING)
    client.get("/")
    return shown_number(response.content)


@pytest.fixture
def crm(site, httpserver):
    """A CRM endpoint that accepts the first event and is down afterwards: one delivered and
    one unsent delivery per call, both carrying the caller's number in their payload."""
    httpserver.expect_oneshot_request("/crm").respond_with_response(Response("ok", status=200))
    httpserver.expect_request("/crm").respond_with_response(Response("down", status=503))
    with override_settings(
        WAGTAIL_CALLTRACKING={**settings.WAGTAIL_CALLTRACKING, "HTTP_TIMEOUT_SECONDS": 2}
    ):
        yield CRMEndpoint.objects.create(
            site=site, name="CRM", url=httpserver.url_for("/crm"), secret="s", on_call_started=True,
            on_call_completed=True,
        )


@pytest.fixture
def world(client, tracked_site, home_page, crm, django_capture_on_commit_callbacks):
    """The caller's journey and two calls (one to their pool number, one to the newspaper's
    static number), a rejected webhook naming them, and an unrelated visitor and caller."""
    from django.test import Client

    from .conftest import BROWSER_UA

    number = organic_then_paid_visit(client)
    visitor = Visitor.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        ring(client, number, call_id="erase-1")
    with django_capture_on_commit_callbacks(execute=True):
        ring(client, NEWSPAPER_NUMBER, call_id="erase-2", recording_url="https://recordings.example.com/rec-2.mp3")
    # A webhook whose signature failed (e.g. a misconfigured secret) still sits in the raw log.
    rejected = client.post(
        "/calltracking/webhooks/generic/voice/",
        json.dumps({"call_id": "x-1", "from": CALLER_DIGITS.join(["1", ""]), "to": number}),
        content_type="application/json",
        HTTP_X_CALLTRACKING_TIMESTAMP="1",
        HTTP_X_CALLTRACKING_SIGNATURE="v1=forged",
    )
    assert rejected.status_code == 403
    stranger = Client(HTTP_USER_AGENT=BROWSER_UA)
    stranger_number = shown_number(stranger.get("/?utm_source=bing&utm_medium=cpc").content)
    with django_capture_on_commit_callbacks(execute=True):
        ring(
            stranger, stranger_number, caller=OTHER_CALLER, call_id="stranger-1", caller_name="Sam Stranger",
            recording_url="https://recordings.example.com/stranger.mp3",
        )
    return {"visitor": visitor, "number": number, "stranger_number": stranger_number}


def stored_mentions(value: str) -> list[str]:
    """Every stored row (of the tables holding personal data) that contains ``value``."""
    found = []
    for model in (Visitor, VisitorSession, PageView, Call, CallEvent, CallTouch, Delivery):
        for row in model.objects.values():
            if value in json.dumps(row, default=str):
                found.append(f"{model.__name__} {row['id']}")
    for event in WebhookEvent.objects.all():
        if value.encode() in bytes(event.body) or value in event.url or value in json.dumps(event.headers):
            found.append(f"WebhookEvent {event.pk}")
    return found


def test_erasing_a_caller_removes_them_from_every_table(client, world):
    visitor = world["visitor"]
    assert stored_mentions(CALLER_DIGITS)  # the setup stored it in many places
    sessions_before = VisitorSession.objects.filter(visitor=visitor).count()
    assert sessions_before >= 2

    summary = erase_personal_data(phone_numbers=["(312) 555-0177"])

    assert stored_mentions(CALLER_DIGITS) == []
    assert stored_mentions("Jane Caller") == []
    assert stored_mentions("GCLID-PRIVACY-1") == []
    assert stored_mentions("rec-1.mp3") == [] and stored_mentions("rec-2.mp3") == []
    assert not Visitor.objects.filter(pk=visitor.pk).exists()
    assert summary.visitors == 1
    assert summary.sessions == sessions_before
    assert summary.calls == 2
    assert summary.caller_numbers == 1
    assert sorted(summary.recording_urls) == [
        "https://recordings.example.com/rec-1.mp3",
        "https://recordings.example.com/rec-2.mp3",
    ]
    assert summary.webhook_events == WebhookEvent.objects.filter(error="Personal data erased.").count() >= 5
    assert summary.not_found == 0

    # The stranger is untouched.
    stranger_call = Call.objects.get(provider_call_id="stranger-1")
    assert stranger_call.from_number == OTHER_CALLER
    assert stranger_call.caller_name == "Sam Stranger"
    assert stranger_call.session_id is not None
    assert VisitorSession.objects.count() == 1
    assert stored_mentions(OTHER_CALLER[2:])


def test_calls_stay_in_reports_without_personal_data(client, world):
    erase_personal_data(phone_numbers=[CALLER])
    call = Call.objects.get(provider_call_id="erase-1")
    assert (call.from_number, call.caller_name, call.recording_url, call.gclid, call.note) == ("", "", "", "", "")
    assert call.visitor_id is None and call.session_id is None
    # The attribution summary survives: reports stay right.
    assert call.confidence == "exact"
    assert call.result == "answered" and call.talk_seconds == 95
    touches = {touch.model: touch for touch in CallTouch.objects.filter(call=call)}
    assert touches["last"].channel == "paid_search"
    assert touches["last"].keyword == "plumber"
    assert touches["last"].campaign == "spring"
    assert touches["first"].session_id is None
    newspaper_call = Call.objects.get(provider_call_id="erase-2")
    assert newspaper_call.source.name == "Newspaper"
    # The timeline keeps the progress of the call, not the raw payloads.
    for event in CallEvent.objects.filter(call=call):
        assert "raw" not in event.data
    assert CallEvent.objects.filter(call=call, data__outcome="answered").exists()


def test_erasure_releases_the_live_lease_and_keeps_it_as_anonymous_history(client, world):
    lease = Lease.objects.get(number__number=world["number"])
    assert lease.session_id is not None and lease.released_at is None
    erase_personal_data(phone_numbers=[CALLER])
    lease.refresh_from_db()
    assert lease.session_id is None
    assert lease.released_at is not None
    assert lease.release_reason == LeaseReleaseReason.ERASED
    assert TrackingNumber.objects.get(number=world["number"]).current_lease_id is None
    # Calls keep pointing at the lease (the number's history).
    assert Call.objects.get(provider_call_id="erase-1").lease_id == lease.pk


def test_erasure_redacts_and_cancels_deliveries(client, world):
    deliveries = Delivery.objects.filter(call__provider_call_id__in=["erase-1", "erase-2"])
    assert deliveries.filter(status=DeliveryStatus.DELIVERED).exists()
    assert deliveries.filter(status__in=Delivery.SENDABLE).exists()
    summary = erase_personal_data(phone_numbers=[CALLER])
    assert summary.deliveries == deliveries.count()
    assert summary.deliveries_cancelled >= 1
    assert not deliveries.filter(status__in=Delivery.SENDABLE).exists()
    assert all(row.payload == {} for row in deliveries)
    stranger_delivery = Delivery.objects.filter(call__provider_call_id="stranger-1").first()
    assert stranger_delivery.payload


def test_erasure_redacts_the_raw_webhook_log_and_nothing_is_replayed(client, world):
    erase_personal_data(phone_numbers=[CALLER])
    rejected = WebhookEvent.objects.get(provider="generic")
    assert rejected.status == WebhookEventStatus.REJECTED
    assert bytes(rejected.body) == b"" and rejected.headers == {}
    assert not WebhookEvent.objects.filter(
        status__in=[WebhookEventStatus.FAILED, WebhookEventStatus.RECEIVED], error="Personal data erased."
    ).exists()
    # The stranger's log is intact.
    assert any(OTHER_CALLER.encode() in bytes(event.body) for event in WebhookEvent.objects.all())


def test_erasing_a_visitor_follows_their_calls_to_the_caller(client, world):
    summary = erase_personal_data(visitor_keys=[str(world["visitor"].key)])
    # The newspaper call was never linked to the visitor, but it is from the same caller.
    assert summary.calls == 2
    assert stored_mentions(CALLER_DIGITS) == []


def test_erasing_a_caller_without_following_links(client, world):
    summary = erase_personal_data(phone_numbers=[CALLER], follow_links=False)
    assert summary.calls == 2
    assert summary.visitors == 0  # the visitor their calls were attributed to is kept
    assert Visitor.objects.filter(pk=world["visitor"].pk).exists()
    assert Call.objects.filter(from_number=CALLER).count() == 0
    # The calls no longer point at the visitor.
    assert not Call.objects.filter(visitor=world["visitor"]).exists()


def test_dry_run_reports_the_same_and_changes_nothing(client, world):
    before = {model.__name__: model.objects.count() for model in (Visitor, VisitorSession, PageView)}
    preview = erase_personal_data(phone_numbers=[CALLER], dry_run=True)
    after = {model.__name__: model.objects.count() for model in (Visitor, VisitorSession, PageView)}
    assert before == after
    assert Call.objects.get(provider_call_id="erase-1").from_number == CALLER
    assert Lease.objects.get(number__number=world["number"]).released_at is None
    summary = erase_personal_data(phone_numbers=[CALLER])
    preview_counts = {**preview.as_dict(), "dry_run": False}
    assert preview_counts == summary.as_dict()


def test_erasure_is_idempotent_and_reports_unknown_identifiers(client, world):
    erase_personal_data(phone_numbers=[CALLER])
    again = erase_personal_data(phone_numbers=[CALLER], visitor_keys=[world["visitor"].key])
    assert again.calls == 0 and again.visitors == 0 and again.webhook_events == 0
    assert again.not_found == 2


def test_an_erased_visitor_coming_back_starts_afresh(client, world):
    erase_personal_data(phone_numbers=[CALLER])
    response = client.get("/")  # the browser still sends its old cookie
    assert response.status_code == 200
    new_visitor = Visitor.objects.exclude(sessions__calls__provider_call_id="stranger-1").get()
    assert new_visitor.pk != world["visitor"].pk
    assert response.cookies["ct_visitor"].value


@pytest.mark.parametrize("value", ["anonymous", "", "private"])
def test_withheld_numbers_cannot_be_erased_by_number(value):
    with pytest.raises(ErasureError):
        erase_personal_data(phone_numbers=[value])


@pytest.mark.parametrize("value", ["not-a-uuid", "123", "'; DROP TABLE x; --"])
def test_malformed_visitor_ids_are_refused(value):
    with pytest.raises(ErasureError):
        erase_personal_data(visitor_keys=[value])


def test_spool_files_naming_the_caller_are_reported(client, world, tmp_path):
    import base64

    (tmp_path / "20260101T000000-demo-aaaa.json").write_text(
        json.dumps({"body_b64": base64.b64encode(json.dumps({"from": CALLER}).encode()).decode()})
    )
    (tmp_path / "20260101T000000-demo-bbbb.json").write_text(json.dumps({"body_b64": ""}))
    with override_settings(WAGTAIL_CALLTRACKING={**settings.WAGTAIL_CALLTRACKING, "WEBHOOK_SPOOL_DIR": str(tmp_path)}):
        summary = erase_personal_data(phone_numbers=[CALLER])
    assert [path.rsplit("/", 1)[-1] for path in summary.spool_files] == ["20260101T000000-demo-aaaa.json"]
    assert any("spool" in line for line in summary.lines())


# --- the command ---------------------------------------------------------------------------------------


def run(*args, stdin=None, monkeypatch=None):
    out = io.StringIO()
    call_command("calltracking_erase", *args, stdout=out)
    return out.getvalue()


def test_command_erases_with_a_summary(client, world):
    output = run("--phone", "+1 312-555-0177", "--noinput")
    assert "Calls whose personal data were erased: 2" in output
    assert "recording to delete at the provider: https://recordings.example.com/rec-1.mp3" in output
    assert "Erasure complete." in output
    assert stored_mentions(CALLER_DIGITS) == []


def test_command_dry_run_and_json(client, world):
    output = run("--phone", CALLER, "--dry-run")
    assert "would be" in output and "Dry run" in output
    assert Call.objects.filter(from_number=CALLER).count() == 2
    data = json.loads(run("--visitor", str(world["visitor"].key), "--noinput", "--json"))
    assert data["visitors"] == 1 and data["calls"] == 2 and data["dry_run"] is False


def test_command_asks_for_confirmation(client, world, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="cancelled"):
        run("--phone", CALLER)
    assert Call.objects.filter(from_number=CALLER).count() == 2
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert "Erasure complete." in run("--phone", CALLER)
    assert Call.objects.filter(from_number=CALLER).count() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [((), "at least one"), (("--visitor", "nope", "--noinput"), "not a visitor id"),
     (("--phone", "anonymous", "--noinput"), "withheld")],
)
def test_command_errors(db, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


# --- the admin screen ------------------------------------------------------------------------------------

ERASE_URL = "wagtail_calltracking_erasure:index"


def menu_names(client):
    from django.test import RequestFactory
    from wagtail.admin.menu import admin_menu

    request = RequestFactory().get("/admin/")
    request.user = client.user
    for item in admin_menu.menu_items_for_request(request):
        if item.name == "calltracking":
            return [sub.name for sub in item.menu.menu_items_for_request(request)]
    return []


def test_admin_erasure_needs_the_permission(client, world):
    user = make_admin_user(["wagtail_calltracking.view_call"])
    client.force_login(user)
    client.user = user
    response = client.get(reverse(ERASE_URL))
    assert response.status_code == 302 and response["Location"] == reverse("wagtailadmin_home")
    response = client.post(reverse(ERASE_URL), {"phone_numbers": CALLER, "confirm": "1", "follow_links": "on"})
    assert response.status_code == 302 and response["Location"] == reverse("wagtailadmin_home")
    assert Call.objects.filter(from_number=CALLER).count() == 2
    assert "erase-personal-data" not in menu_names(client)


def test_admin_erasure_preview_then_confirm(client, world):
    user = make_admin_user(["wagtail_calltracking.erase_personal_data"])
    client.force_login(user)
    client.user = user
    assert "erase-personal-data" in menu_names(client)
    call = Call.objects.get(provider_call_id="erase-1")
    page = client.get(reverse(ERASE_URL), {"call": call.pk})
    assert page.status_code == 200
    assert CALLER.encode() in page.content and str(world["visitor"].key).encode() in page.content

    preview = client.post(reverse(ERASE_URL), {"phone_numbers": "(312) 555-0177", "follow_links": "on"})
    assert preview.status_code == 200
    assert b"Erase permanently" in preview.content
    assert b"Calls whose personal data would be erased: 2" in preview.content
    assert Call.objects.filter(from_number=CALLER).count() == 2  # nothing erased yet

    done = client.post(
        reverse(ERASE_URL), {"phone_numbers": "(312) 555-0177", "follow_links": "on", "confirm": "1"}, follow=True
    )
    assert done.status_code == 200
    assert b"were erased: 2" in done.content
    assert b"rec-1.mp3" in done.content  # the recordings to delete at the provider
    assert stored_mentions(CALLER_DIGITS) == []


def test_admin_erasure_form_errors(client, db):
    user = make_admin_user(superuser=True)
    client.force_login(user)
    empty = client.post(reverse(ERASE_URL), {})
    assert empty.status_code == 200 and b"Enter at least one phone number or visitor id" in empty.content
    bad = client.post(reverse(ERASE_URL), {"visitor_ids": "<script>alert(1)</script>", "phone_numbers": "anonymous"})
    assert bad.status_code == 200
    assert b"<script>alert(1)</script>" not in bad.content
    assert b"is not a visitor id" in bad.content and b"withheld" in bad.content


def test_erasure_permission_is_in_the_group_editor(client, db):
    from wagtail import hooks

    registered = set()
    for hook in hooks.get_hooks("register_permissions"):
        registered.update(permission.codename for permission in hook())
    assert "erase_personal_data" in registered


def test_erased_calls_keep_no_link_to_a_kept_visit(client, world):
    erase_personal_data(phone_numbers=[CALLER], follow_links=False)
    for call in Call.objects.filter(provider_call_id__in=["erase-1", "erase-2"]):
        assert not CallTouch.objects.filter(call=call, session__isnull=False).exists()
        assert not call.candidate_sessions.exists()


def test_erased_calls_leave_the_google_ads_feed(client, world):
    from wagtail_calltracking.integrations.google_ads import feed_rows, render_csv
    from wagtail_calltracking.models import DeliveryEvent, DeliveryKind, GoogleAdsFeed

    feed = GoogleAdsFeed.objects.create(name="Ads", time_zone="America/Chicago")
    call = Call.objects.get(provider_call_id="erase-1")
    Delivery.objects.create(
        kind=DeliveryKind.GOOGLE_ADS, target_id=feed.pk, target_name="Ads", call=call,
        event=DeliveryEvent.CALL_COMPLETED, status=DeliveryStatus.AWAITING_FETCH,
        payload={"click_id": "GCLID-PRIVACY-1", "conversion_name": "Phone call",
                 "conversion_time": call.started_at.isoformat()},
    )
    assert "GCLID-PRIVACY-1" in render_csv(feed, feed_rows(feed))
    erase_personal_data(phone_numbers=[CALLER])
    assert "GCLID-PRIVACY-1" not in render_csv(feed, feed_rows(feed))
    assert not feed_rows(feed).exists()


def test_call_detail_offers_erasure_to_permitted_users_only(client, world):
    call = Call.objects.get(provider_call_id="erase-1")
    detail = reverse("wagtail_calltracking_calls:inspect", args=[call.pk])
    erase_link = f'{reverse(ERASE_URL)}?call={call.pk}'.encode()
    client.force_login(make_admin_user(["wagtail_calltracking.view_call"]))
    assert erase_link not in client.get(detail).content
    client.force_login(make_admin_user(["wagtail_calltracking.view_call", "wagtail_calltracking.erase_personal_data"]))
    page = client.get(detail)
    assert erase_link in page.content
    form = client.get(erase_link.decode())
    assert CALLER.encode() in form.content and str(world["visitor"].key).encode() in form.content
    erase_personal_data(phone_numbers=[CALLER])
    assert b"Nothing identifies the caller" in client.get(detail).content

"""GA4 Measurement Protocol: payload, rules, limits, the 72-hour window, validation."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.integrations_fixtures import CLIENT_ID, GA_SESSION, MEASUREMENT_ID, make_attributed_call
from wagtail_calltracking.integrations import delivery, ga4
from wagtail_calltracking.integrations.base import Skip
from wagtail_calltracking.models import (
    Call,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    GA4Property,
)
from wagtail_calltracking.models.integrations import GA4_NAME_RE
from wagtail_calltracking.signals import call_completed

pytestmark = pytest.mark.django_db


def send_completed(call, capture):
    with capture(execute=True):
        call_completed.send(sender=Call, call=call)
    return Delivery.objects.get(call=call, kind=DeliveryKind.GA4)


def test_event_reaches_ga4_with_session_and_attribution(
    site, integrations_settings, ga4_property, django_capture_on_commit_callbacks
):
    server = integrations_settings
    server.expect_request(
        "/ga/mp/collect",
        method="POST",
        query_string={"measurement_id": MEASUREMENT_ID, "api_secret": "s3cr3t-api"},
        headers={"Content-Type": "application/json"},
    ).respond_with_data("", status=204)
    call = make_attributed_call(site)

    row = send_completed(call, django_capture_on_commit_callbacks)

    assert row.status == DeliveryStatus.DELIVERED
    ((request, _),) = server.log
    body = json.loads(request.get_data())
    assert body["client_id"] == CLIENT_ID
    assert body["timestamp_micros"] == int(call.started_at.timestamp() * 1_000_000)
    (event,) = body["events"]
    assert event["name"] == "phone_call"
    params = event["params"]
    assert params["session_id"] == GA_SESSION
    assert params["engagement_time_msec"] == 1
    assert params["source"] == "google"
    assert params["medium"] == "cpc"
    assert params["campaign"] == "spring-drains"
    assert params["keyword"] == "emergency plumber"
    assert params["call_result"] == "answered"
    assert params["call_duration"] == 184
    assert params["first_time_caller"] == 1
    assert params["value"] == 75.0
    assert params["currency"] == "USD"
    assert params["tracking_source"] == "Google Ads"


def test_no_phone_number_is_ever_sent(site, integrations_settings, ga4_property, django_capture_on_commit_callbacks):
    server = integrations_settings
    server.expect_request("/ga/mp/collect").respond_with_data("", status=204)
    call = make_attributed_call(site, caller_name="Jane Doe")
    send_completed(call, django_capture_on_commit_callbacks)
    ((request, _),) = server.log
    raw = request.get_data(as_text=True)
    digits = "".join(ch for ch in raw if ch.isdigit())
    for number in (call.from_number, call.to_number):
        assert number not in raw
        assert number.lstrip("+")[-10:] not in digits
    assert "Jane" not in raw


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"result": "missed", "talk_seconds": 0}, "Not answered"),
        ({"is_first_time": False}, "Repeat caller"),
        ({"talk_seconds": 20}, "under the minimum"),
        ({"tag": "spam"}, "spam"),
        ({"ga_client_id": "", "ga_session_ids": {}}, "No GA client id"),
        ({"ga_client_id": "garbage<script>", "ga_session_ids": {}}, "No GA client id"),
    ],
)
def test_calls_that_do_not_count_are_skipped_with_a_reason(
    site, integrations_settings, ga4_property, django_capture_on_commit_callbacks, changes, reason
):
    ga4_property.first_time_only = True
    ga4_property.min_talk_seconds = 30
    ga4_property.save()
    call = make_attributed_call(site, **changes)
    row = send_completed(call, django_capture_on_commit_callbacks)
    assert row.status == DeliveryStatus.SKIPPED
    assert reason in row.skip_reason
    assert integrations_settings.log == []


def test_missed_calls_count_when_configured(
    site, integrations_settings, ga4_property, django_capture_on_commit_callbacks
):
    integrations_settings.expect_request("/ga/mp/collect").respond_with_data("", status=204)
    ga4_property.answered_only = False
    ga4_property.save()
    call = make_attributed_call(site, result="missed", talk_seconds=0)
    row = send_completed(call, django_capture_on_commit_callbacks)
    assert row.status == DeliveryStatus.DELIVERED
    assert row.payload["events"][0]["params"]["call_result"] == "missed"


def test_calls_without_client_id_can_use_a_pseudonymous_id(
    site, integrations_settings, ga4_property, django_capture_on_commit_callbacks
):
    integrations_settings.expect_request("/ga/mp/collect").respond_with_data("", status=204)
    ga4_property.send_without_client_id = True
    ga4_property.save()
    call = make_attributed_call(site, ga_client_id="", ga_session_ids={}, session=None)
    row = send_completed(call, django_capture_on_commit_callbacks)
    assert row.status == DeliveryStatus.DELIVERED
    client_id = row.payload["client_id"]
    assert client_id == ga4.pseudonymous_client_id(call)  # stable for the call
    assert "session_id" not in row.payload["events"][0]["params"]
    assert call.from_number.lstrip("+") not in client_id


def test_older_than_72_hours_is_skipped(site, integrations_settings, ga4_property, django_capture_on_commit_callbacks):
    from django.utils import timezone

    call = make_attributed_call(site, started_at=timezone.now() - timedelta(hours=73))
    row = send_completed(call, django_capture_on_commit_callbacks)
    assert row.status == DeliveryStatus.SKIPPED
    assert "72 hours" in row.skip_reason


def test_a_retry_past_72_hours_is_skipped_not_sent(site, integrations_settings, ga4_property):
    from django.utils import timezone

    call = make_attributed_call(site, started_at=timezone.now() - timedelta(hours=71))
    payload = ga4.build_event_payload(ga4_property, call)
    payload["timestamp_micros"] -= 2 * 3600 * 1_000_000  # as if two more hours went by
    row = Delivery.objects.create(
        kind=DeliveryKind.GA4,
        target_id=ga4_property.pk,
        call=call,
        event="call_completed",
        payload=payload,
        status=DeliveryStatus.RETRYING,
        next_attempt_at=timezone.now(),
    )
    delivery.process_due()
    row.refresh_from_db()
    assert row.status == DeliveryStatus.SKIPPED
    assert integrations_settings.log == []


def test_future_timestamps_are_clamped(site, integrations_settings, ga4_property):
    from django.utils import timezone

    integrations_settings.expect_request("/ga/mp/collect").respond_with_data("", status=204)
    call = make_attributed_call(site, started_at=timezone.now() + timedelta(minutes=3))
    row = Delivery.objects.create(
        kind=DeliveryKind.GA4,
        target_id=ga4_property.pk,
        call=call,
        event="call_completed",
        next_attempt_at=timezone.now(),
    )
    delivery.process_due()
    ((request, _),) = integrations_settings.log
    sent = json.loads(request.get_data())["timestamp_micros"]
    assert sent <= timezone.now().timestamp() * 1_000_000
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED


@pytest.mark.parametrize(
    "stored",
    [
        {MEASUREMENT_ID: GA_SESSION},
        {MEASUREMENT_ID.removeprefix("G-"): GA_SESSION},
        {MEASUREMENT_ID: f"GS1.1.{GA_SESSION}.4.1.1673515200.0.0.0"},
        {MEASUREMENT_ID: f"GS2.1.s{GA_SESSION}$o4$g1$t1673515200$j60$l0$h0"},
        {f"_ga_{MEASUREMENT_ID.removeprefix('G-')}": f"GS2.1.o4$s{GA_SESSION}$g1"},
    ],
)
def test_session_id_lookup_accepts_both_cookie_formats(ga4_property, stored):
    call = Call(ga_session_ids=stored)
    assert ga4.session_id_for(call, MEASUREMENT_ID) == GA_SESSION


def test_session_id_of_another_property_is_not_used(ga4_property):
    assert ga4.session_id_for(Call(ga_session_ids={"G-OTHER99": "123"}), MEASUREMENT_ID) == ""
    assert ga4.session_id_for(Call(ga_session_ids="not a dict"), MEASUREMENT_ID) == ""


def test_limits_are_respected(site, ga4_property):
    call = make_attributed_call(site)
    call.touches.update(campaign="c" * 250, keyword="k" * 200)
    payload = ga4.build_event_payload(ga4_property, Call.objects.get(pk=call.pk))
    params = payload["events"][0]["params"]
    assert params["campaign"] == "c" * 100
    assert params["keyword"] == "k" * 100
    assert len(params) <= 25


@given(
    st.dictionaries(
        st.text(min_size=0, max_size=60),
        st.one_of(
            st.text(max_size=300),
            st.integers(),
            st.booleans(),
            st.none(),
            st.decimals(allow_nan=False, allow_infinity=False, places=2),
        ),
        max_size=60,
    )
)
@hsettings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_limit_params_always_within_ga4_limits(params):
    cleaned = ga4.limit_params(params)
    assert len(cleaned) <= 25
    for name, value in cleaned.items():
        assert GA4_NAME_RE.match(name)
        assert len(name) <= 40
        if isinstance(value, str):
            assert 0 < len(value) <= 100
        else:
            assert isinstance(value, int | float)
    assert json.dumps(cleaned)


def test_value_and_currency_survive_the_parameter_cut():
    params = {f"p{i}": "x" for i in range(40)} | {"value": Decimal("10.00"), "currency": "EUR"}
    ordered = {k: params[k] for k in ("value", "currency")} | params
    cleaned = ga4.limit_params(ordered)
    assert cleaned["value"] == 10.0 and cleaned["currency"] == "EUR"


def test_value_without_currency_is_not_sent(site, ga4_property):
    call = make_attributed_call(site)
    call.source.currency = ""
    call.source.save()
    params = ga4.build_event_payload(ga4_property, Call.objects.get(pk=call.pk))["events"][0]["params"]
    assert "value" not in params and "currency" not in params


def test_editor_value_overrides_source_value(site, ga4_property):
    call = make_attributed_call(site, value=Decimal("300.00"))
    params = ga4.build_event_payload(ga4_property, call)["events"][0]["params"]
    assert params["value"] == 300.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("measurement_id", "UA-12345-1"),
        ("measurement_id", "G-"),
        ("event_name", "1call"),
        ("event_name", "phone call"),
        ("event_name", "x" * 41),
        ("event_name", "session_start"),
        ("event_name", "google_call"),
        ("event_name", "firebase_x"),
    ],
)
def test_invalid_configuration_is_refused(site, field, value):
    prop = GA4Property(**({"site": site, "measurement_id": "G-ABC123", "api_secret": "x"} | {field: value}))
    with pytest.raises(ValidationError):
        prop.full_clean()


def test_measurement_id_is_normalised_and_unique_per_site(site, ga4_property):
    prop = GA4Property(site=site, measurement_id="g-abc123xyz", api_secret="x")
    with pytest.raises(ValidationError) as excinfo:
        prop.full_clean()
    assert "already set up" in str(excinfo.value)
    assert prop.measurement_id == MEASUREMENT_ID


def test_validate_uses_the_debug_endpoint(site, integrations_settings, ga4_property):
    server = integrations_settings
    messages = [
        {
            "fieldPath": "events[0].params.value",
            "description": "Value must be a number.",
            "validationCode": "VALUE_INVALID",
        }
    ]
    server.expect_request("/ga/debug/mp/collect", method="POST").respond_with_json({"validationMessages": messages})
    result = ga4.validate(ga4_property)
    assert result["messages"] == messages
    assert result["error"] == ""
    assert result["payload"]["events"][0]["name"] == "phone_call"


def test_validate_reports_success_and_uses_the_latest_real_payload(site, integrations_settings, ga4_property):
    server = integrations_settings
    server.expect_request("/ga/debug/mp/collect").respond_with_json({"validationMessages": []})
    call = make_attributed_call(site)
    payload = ga4.build_event_payload(ga4_property, call)
    Delivery.objects.create(
        kind=DeliveryKind.GA4,
        target_id=ga4_property.pk,
        call=call,
        event="call_completed",
        payload=payload,
        status=DeliveryStatus.DELIVERED,
    )
    result = ga4.validate(ga4_property)
    assert result["messages"] == [] and result["error"] == ""
    ((request, _),) = server.log
    assert json.loads(request.get_data()) == payload


def test_validate_network_error_hides_the_secret(site, settings, ga4_property):
    from django.test import override_settings

    with override_settings(
        WAGTAIL_CALLTRACKING={
            **settings.WAGTAIL_CALLTRACKING,
            "GA4_ENDPOINT": "http://127.0.0.1:9",
            "HTTP_TIMEOUT_SECONDS": 1,
        }
    ):
        result = ga4.validate(ga4_property)
    assert result["error"]
    assert "s3cr3t-api" not in result["error"]


def test_send_error_hides_the_secret(site, settings, ga4_property, django_capture_on_commit_callbacks):
    from django.test import override_settings

    with override_settings(
        WAGTAIL_CALLTRACKING={
            **settings.WAGTAIL_CALLTRACKING,
            "GA4_ENDPOINT": "http://127.0.0.1:9",
            "HTTP_TIMEOUT_SECONDS": 1,
        }
    ):
        row = send_completed(make_attributed_call(site), django_capture_on_commit_callbacks)
    assert row.status == DeliveryStatus.RETRYING
    assert row.last_error and "s3cr3t-api" not in row.last_error


def test_skip_is_an_exception_with_a_reason():
    assert Skip("why").reason == "why"

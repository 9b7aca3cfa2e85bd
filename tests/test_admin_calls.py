"""The calls listing (order, columns, filters, search, CSV/XLSX export) and the call detail
page (attribution, candidates, multi-channel sequence, journey, device, previous calls)."""

import csv
import datetime
import io

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wagtail_calltracking.models import (
    CallEvent,
    CallResult,
    Channel,
    Confidence,
    TouchModel,
)

from .admin_fixtures import journey_call, make_admin_user, make_manager, simple_call
from .factories import make_call, make_number, make_session, make_source

pytestmark = pytest.mark.django_db

INDEX = "wagtail_calltracking_calls:index"
RESULTS = "wagtail_calltracking_calls:index_results"


def detail_url(call):
    return reverse("wagtail_calltracking_calls:inspect", args=[call.pk])


@pytest.fixture
def admin_client(client, site):
    client.force_login(make_admin_user(superuser=True))
    return client


def listed_ids(response):
    return [call.pk for call in response.context["object_list"]]


def test_listing_newest_first_with_every_column(admin_client):
    now = timezone.now()
    manager = make_manager("Alice Baker")
    older = simple_call(started_at=now - datetime.timedelta(hours=3), channel=Channel.EMAIL,
                        utm_source="newsletter")
    newest = journey_call(started_at=now, manager=manager)
    middle = simple_call(started_at=now - datetime.timedelta(hours=1), result=CallResult.MISSED,
                         is_first_time=False)
    response = admin_client.get(reverse(INDEX))
    assert response.status_code == 200
    assert listed_ids(response) == [newest.pk, middle.pk, older.pk]
    html = response.content.decode()
    headings = [str(column.label) for column in response.context["table"].columns.values()]
    assert headings == ["Time", "Caller", "Tracking number", "Source, campaign, keyword",
                        "Result", "Duration", "Answered by", "First-time", "Confidence"]
    assert "(312) 555-0100" in html  # caller, national format
    assert "Paid search" in html and "spring-plumbing" in html and "plumber" in html
    assert "1:35" in html  # talk time
    assert "Alice Baker" in html
    assert "Repeat" in html and "New" in html
    assert "Exact" in html
    assert detail_url(newest) in html
    # The editors' classification shows under the result.
    newest.tag, newest.value = "lead", 120
    newest.save()
    html = admin_client.get(reverse(INDEX)).content.decode()
    assert "Lead · 120" in html


def test_filters(admin_client):
    now = timezone.now()
    alice = make_manager("Alice")
    paid_source = make_source(name="Paid", static_number=make_number())
    number = make_number()
    a = simple_call(channel=Channel.PAID_SEARCH, campaign="spring-sale", keyword="emergency plumber",
                    started_at=now - datetime.timedelta(days=10), manager=alice,
                    confidence=Confidence.EXACT, source=paid_source)
    b = simple_call(channel=Channel.EMAIL, started_at=now, result=CallResult.MISSED,
                    is_first_time=False, confidence=Confidence.LATE, tracking_number=number)
    c = make_call(started_at=now - datetime.timedelta(days=1))  # no touches: unattributed
    c.tag = "spam"
    c.save()

    def ids(**params):
        return set(listed_ids(admin_client.get(reverse(INDEX), params)))

    assert ids() == {a.pk, b.pk, c.pk}
    assert ids(channel="paid_search") == {a.pk}
    assert ids(channel="unattributed") == {c.pk}
    assert ids(campaign="SPRING") == {a.pk}
    assert ids(keyword="emergency") == {a.pk}
    assert ids(source=paid_source.pk) == {a.pk}
    assert ids(tracking_number=number.pk) == {b.pk}
    assert ids(result=["missed"]) == {b.pk}
    assert ids(result=["missed", "answered"]) == {a.pk, b.pk}
    assert ids(manager=alice.pk) == {a.pk}
    assert ids(is_first_time="false") == {b.pk}
    assert ids(confidence=["late"]) == {b.pk}
    assert ids(tag="spam") == {c.pk}
    assert ids(tag="untagged") == {a.pk, b.pk}
    today = timezone.localdate()
    assert ids(started_from=(today - datetime.timedelta(days=2)).isoformat()) == {b.pk, c.pk}
    assert ids(started_to=(today - datetime.timedelta(days=2)).isoformat()) == {a.pk}
    assert ids(started_from=today.isoformat(), started_to=today.isoformat()) == {b.pk}


def test_attribution_model_switches_the_channel(admin_client):
    call = journey_call()  # first touch: organic search; last and last non-direct: paid search
    first = admin_client.get(reverse(INDEX), {"attribution": TouchModel.FIRST})
    assert first.context["object_list"][0].ct_channel == Channel.ORGANIC_SEARCH
    last = admin_client.get(reverse(INDEX), {"attribution": TouchModel.LAST})
    assert last.context["object_list"][0].ct_channel == Channel.PAID_SEARCH
    default = admin_client.get(reverse(INDEX))
    assert default.context["object_list"][0].ct_channel == Channel.PAID_SEARCH
    assert set(listed_ids(admin_client.get(reverse(INDEX), {"attribution": "first",
                                                            "channel": "organic_search"}))) == {call.pk}


def test_static_source_call_without_touches_reports_the_source(admin_client):
    number = make_number()
    newspaper = make_source(name="Newspaper", static_number=number)
    call = make_call(tracking_number=number, source=newspaper, confidence=Confidence.SOURCE_ONLY)
    row = admin_client.get(reverse(INDEX)).context["object_list"][0]
    assert row.pk == call.pk
    assert (row.ct_channel, row.ct_source) == (Channel.OFFLINE, "Newspaper")


@pytest.mark.parametrize(
    "query", ["+13125550100", "(312) 555-0100", "312-555-0100", "5550100", "3125550100"]
)
def test_search_by_caller_number_however_typed(admin_client, query):
    wanted = simple_call(from_number="+13125550100")
    simple_call(from_number="+14155550199")
    response = admin_client.get(reverse(INDEX), {"q": query})
    assert listed_ids(response) == [wanted.pk]


def test_search_by_caller_name_and_anonymous(admin_client):
    named = simple_call(from_number="+13125550100", caller_name="JANE DOE")
    hidden = simple_call(from_number="anonymous")
    assert listed_ids(admin_client.get(reverse(INDEX), {"q": "jane"})) == [named.pk]
    assert listed_ids(admin_client.get(reverse(INDEX), {"q": "anonymous"})) == [hidden.pk]


def test_csv_export_of_the_filtered_list(admin_client):
    manager = make_manager("Alice")
    journey_call(manager=manager)
    simple_call(channel=Channel.EMAIL, utm_source="newsletter", result=CallResult.MISSED)
    response = admin_client.get(reverse(INDEX), {"channel": "paid_search", "export": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="calls.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    row = rows[0]
    assert row["Caller"] == "+13125550100"
    assert row["Channel"] == "Paid search"
    assert row["Keyword"] == "plumber"
    assert row["Campaign"] == "spring-plumbing"
    assert row["Answered by"] == "Alice"
    assert row["Talk time (s)"] == "95"
    assert row["Result"] == "Answered"
    assert row["gclid"] == "TEST-GCLID"
    # Local time, no UTC offset surprises.
    assert row["Started at"].startswith(timezone.localdate().isoformat()[:4])


def test_xlsx_export_opens(admin_client):
    journey_call()
    simple_call(channel=Channel.EMAIL)
    response = admin_client.get(reverse(INDEX), {"export": "xlsx"})
    assert response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = workbook.active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Call id" and "Keyword" in rows[0]
    assert len(rows) == 3
    started = rows[1][rows[0].index("Started at")]
    assert isinstance(started, datetime.datetime)


def test_detail_page_shows_the_whole_story(admin_client):
    manager = make_manager("Alice Baker")
    call = journey_call(pages=4, manager=manager, recording_url="https://api.example.com/rec/1.mp3")
    CallEvent.objects.create(call=call, event_type="ringing", occurred_at=call.started_at)
    CallEvent.objects.create(call=call, event_type="completed", occurred_at=call.started_at)
    previous = make_call(from_number=call.from_number,
                         started_at=call.started_at - datetime.timedelta(days=3))
    candidate = make_session(channel=Channel.ORGANIC_SOCIAL, source="facebook", landing_path="/promo/")
    call.candidate_sessions.add(candidate, call.session)
    response = admin_client.get(detail_url(call))
    assert response.status_code == 200
    html = response.content.decode()
    # Result, from / to, timings, manager, recording.
    assert "Answered" in html and "(312) 555-0100" in html
    assert call.tracking_number.national in html
    assert "0:07" in html and "1:35" in html and "Alice Baker" in html
    assert '<audio controls preload="none" src="https://api.example.com/rec/1.mp3"' in html
    # Attribution: touches, confidence, candidates.
    assert "First touch" in html and "Last non-direct touch" in html
    assert "plumber" in html and "spring-plumbing" in html and "google / cpc" in html
    assert "TEST-GCLID" in html
    assert "/promo/" in html  # the other candidate
    # Multi-channel sequence: the organic visit then the paid visit.
    visits = response.context["visits"]
    assert [visit.channel for visit in visits] == [Channel.ORGANIC_SEARCH, Channel.PAID_SEARCH]
    assert visits[-1].is_attributed
    # Page-by-page journey with timestamps and time on page.
    pages = visits[-1].pages
    assert [page.title for page in pages] == ["Acme Plumbing", "Service 1", "Service 2", "Service 3"]
    assert [page.offset for page in pages] == ["0:00", "0:40", "1:20", "2:00"]
    assert pages[0].time_on_page == "0:40"
    assert "/services/page-3/" in html
    # Device and region.
    for text in ("203.0.113.7", "Chrome 126", "Mac OS X 14", "Desktop", "Chicago, Illinois"):
        assert text in html, text
    # Call progress and previous calls from the same caller.
    assert "ringing" in html and "completed" in html
    assert detail_url(previous) in html


def test_detail_of_unattributed_call(admin_client):
    call = make_call(from_number="anonymous", to_number="+12125550000")
    response = admin_client.get(detail_url(call))
    assert response.status_code == 200
    assert response.context["visits"] == []
    assert response.context["previous_calls"] == []


def test_detail_of_missing_call_is_404(admin_client):
    assert admin_client.get("/admin/calltracking/calls/999999/").status_code == 404


def test_invalid_classification_is_refused(admin_client):
    call = simple_call()
    response = admin_client.post(detail_url(call), {"tag": "vip", "value": "-5", "note": ""})
    assert response.status_code == 200
    form = response.context["tag_form"]
    assert "tag" in form.errors and "value" in form.errors
    call.refresh_from_db()
    assert call.tag == "" and call.value is None


def test_no_add_edit_or_delete_urls_for_calls(admin_client):
    call = simple_call()
    html = admin_client.get(reverse(INDEX)).content.decode()
    assert "/admin/calltracking/calls/new/" not in html
    for path in ("new/", f"edit/{call.pk}/", f"delete/{call.pk}/"):
        assert admin_client.get(f"/admin/calltracking/calls/{path}").status_code == 404


def _count_queries(client, url, params=None):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params or {})
        assert response.status_code == 200
    return len(queries)


def test_listing_queries_do_not_grow_with_the_page(admin_client, django_assert_max_num_queries):
    manager = make_manager()
    for _ in range(3):
        journey_call(pages=1, visits=1, manager=manager)
    few = _count_queries(admin_client, reverse(INDEX))
    for _ in range(30):
        simple_call(manager=manager, tracking_number=make_number())
    with django_assert_max_num_queries(few):
        response = admin_client.get(reverse(INDEX))
    assert len(response.context["object_list"]) == 33


def test_detail_queries_do_not_grow_with_the_journey(admin_client, django_assert_max_num_queries):
    short = journey_call(pages=2, visits=2)
    short_count = _count_queries(admin_client, detail_url(short))
    long = journey_call(pages=60, visits=12, caller="+13125550111")
    for _ in range(5):
        make_call(from_number=long.from_number, started_at=long.started_at - datetime.timedelta(days=1))
    with django_assert_max_num_queries(short_count):
        admin_client.get(detail_url(long))


QUERY_VALUES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "0", "-1", "999999999999999999999", "2024-13-45", "true", "null",
                     "paid_search", "unattributed", "\x00", "<script>", "%00", "1e309"]),
)
PARAMETERS = ["started_from", "started_to", "attribution", "source", "channel", "campaign",
              "keyword", "tracking_number", "result", "manager", "is_first_time", "confidence",
              "tag", "site", "q", "p", "ordering", "export"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(params=st.dictionaries(st.sampled_from(PARAMETERS), QUERY_VALUES, max_size=6))
def test_garbage_query_strings_never_fail(admin_client, params):
    params = {key: value.replace("\x00", "") for key, value in params.items()}
    params.pop("export", None)
    response = admin_client.get(reverse(RESULTS), params)
    assert response.status_code == 200

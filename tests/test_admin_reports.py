"""Reports: calls by source / channel / campaign / keyword under a chosen attribution model,
manager efficiency, pool health; CSV/XLSX exports; fixed query counts."""

import csv
import datetime
import io

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from wagtail_calltracking.models import CallResult, CallTag, Channel, Lease, PoolStat
from wagtail_calltracking.numbers.health import pool_health

from .admin_fixtures import journey_call, make_admin_user, make_manager, simple_call
from .factories import make_call, make_number, make_pool, make_session, make_source

pytestmark = pytest.mark.django_db

SOURCES = "wagtail_calltracking_report_sources:index"
MANAGERS = "wagtail_calltracking_report_managers:index"
POOLS = "wagtail_calltracking_report_pools:index"


@pytest.fixture
def admin_client(client, site):
    client.force_login(make_admin_user(superuser=True))
    return client


def rows(response):
    return {row["label"]: row for row in response.context["object_list"]}


def test_calls_by_channel(admin_client):
    simple_call(channel=Channel.PAID_SEARCH, result=CallResult.ANSWERED, talk_seconds=60)
    simple_call(channel=Channel.PAID_SEARCH, result=CallResult.ANSWERED, talk_seconds=120,
                is_first_time=False)
    simple_call(channel=Channel.PAID_SEARCH, result=CallResult.MISSED)
    lead = simple_call(channel=Channel.EMAIL, utm_source="newsletter", result=CallResult.BUSY)
    lead.tag = CallTag.LEAD
    lead.save()
    make_call()  # unattributed: no touches
    response = admin_client.get(reverse(SOURCES))
    assert response.status_code == 200
    table = rows(response)
    paid = table["Paid search"]
    assert (paid["calls"], paid["answered"], paid["missed"], paid["first_time"]) == (3, 2, 1, 2)
    assert paid["avg_talk_seconds"] == 90
    assert round(paid["answer_rate"], 1) == 66.7
    assert table["Email"]["missed"] == 1 and table["Email"]["leads"] == 1
    assert table["Unattributed"]["calls"] == 1
    # Ordered by calls, and the totals line.
    assert [row["label"] for row in response.context["object_list"]][0] == "Paid search"
    assert response.context["totals"]["calls"] == 5
    assert "5 calls: 2 answered" in response.content.decode()


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("source", {"google": 2, "newsletter": 1}),
        ("source_medium", {"google / cpc": 2, "newsletter / email": 1}),
        ("campaign", {"spring": 2, "(none)": 1}),
        ("keyword", {"plumber": 1, "drain cleaning": 1, "(none)": 1}),
    ],
)
def test_group_by(admin_client, group_by, expected):
    simple_call(utm_source="google", medium="cpc", campaign="spring", keyword="plumber")
    simple_call(utm_source="google", medium="cpc", campaign="spring", keyword="drain cleaning")
    simple_call(channel=Channel.EMAIL, utm_source="newsletter", medium="email")
    response = admin_client.get(reverse(SOURCES), {"group_by": group_by})
    assert {label: row["calls"] for label, row in rows(response).items()} == expected
    assert response.context["view"].get_page_title().startswith("Calls by")


def test_group_by_tracking_source_links_to_the_calls(admin_client):
    newspaper = make_source(name="Newspaper", static_number=make_number())
    simple_call(channel=Channel.OFFLINE, utm_source="Newspaper", source=newspaper)
    simple_call()
    response = admin_client.get(reverse(SOURCES), {"group_by": "tracking_source"})
    table = rows(response)
    assert table["Newspaper"]["calls"] == 1 and table["(no tracking source)"]["calls"] == 1
    assert f"source={newspaper.pk}" in table["Newspaper"]["calls_url"]


def test_attribution_model_is_applied_after_the_fact(admin_client):
    journey_call()  # first touch organic search, last (non-direct) touch paid search
    by_model = {
        model: set(rows(admin_client.get(reverse(SOURCES), {"attribution": model})))
        for model in ("first", "last", "last_non_direct")
    }
    assert by_model == {
        "first": {"Organic search"},
        "last": {"Paid search"},
        "last_non_direct": {"Paid search"},
    }


def test_sessions_and_conversion_rate(admin_client):
    sessions = [make_session(channel=Channel.PAID_SEARCH, source="google", keyword="plumber")
                for _ in range(4)]
    make_session(channel=Channel.PAID_SEARCH, source="google", keyword="plumber", is_bot=True)
    # The same visit called twice: one converted visit out of four.
    for _ in range(2):
        call = simple_call(keyword="plumber", session=sessions[0])
        call.touches.update(session=sessions[0])
    table = rows(admin_client.get(reverse(SOURCES)))
    assert table["Paid search"]["sessions"] == 4 and table["Paid search"]["calls"] == 2
    assert table["Paid search"]["conversion_rate"] == 25.0
    table = rows(admin_client.get(reverse(SOURCES), {"group_by": "keyword"}))
    assert table["plumber"]["sessions"] == 4


def test_default_range_is_the_last_30_days(admin_client):
    simple_call(started_at=timezone.now() - datetime.timedelta(days=45))
    simple_call()
    assert rows(admin_client.get(reverse(SOURCES)))["Paid search"]["calls"] == 1
    old = (timezone.localdate() - datetime.timedelta(days=60)).isoformat()
    table = rows(admin_client.get(reverse(SOURCES), {"started_from": old}))
    assert table["Paid search"]["calls"] == 2


def test_exclude_spam(admin_client):
    spam = simple_call()
    spam.tag = CallTag.SPAM
    spam.save()
    simple_call()
    assert rows(admin_client.get(reverse(SOURCES)))["Paid search"]["calls"] == 2
    table = rows(admin_client.get(reverse(SOURCES), {"exclude_spam": "on"}))
    assert table["Paid search"]["calls"] == 1


def test_source_report_exports(admin_client):
    simple_call(keyword="plumber")
    simple_call(channel=Channel.EMAIL, utm_source="newsletter")
    response = admin_client.get(reverse(SOURCES), {"export": "csv", "group_by": "channel"})
    assert response.status_code == 200
    assert "calls-by-source-" in response["Content-Disposition"]
    data = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["Channel"]: row["Calls"] for row in data} == {"Paid search": "1", "Email": "1"}
    response = admin_client.get(reverse(SOURCES), {"export": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:2] == ("Channel", "Calls") and len(values) == 3


def test_manager_efficiency(admin_client):
    alice, bob = make_manager("Alice"), make_manager("Bob")
    now = timezone.now()
    for ring, talk in ((5, 100), (15, 200)):
        make_call(manager=alice, result=CallResult.ANSWERED, ring_seconds=ring, talk_seconds=talk,
                  started_at=now - datetime.timedelta(hours=5))
    # Bob missed two callers; one of them got through later (called back / tried again).
    make_call(manager=bob, result=CallResult.MISSED, from_number="+13125550101",
              started_at=now - datetime.timedelta(hours=4))
    make_call(manager=bob, result=CallResult.MISSED, from_number="+13125550102",
              started_at=now - datetime.timedelta(hours=4))
    make_call(manager=alice, result=CallResult.ANSWERED, from_number="+13125550101",
              started_at=now - datetime.timedelta(hours=1), talk_seconds=30, ring_seconds=4)
    make_call(result=CallResult.MISSED, from_number="anonymous")
    response = admin_client.get(reverse(MANAGERS))
    assert response.status_code == 200
    table = rows(response)
    assert table["Alice"]["calls"] == 3 and table["Alice"]["answer_rate"] == 100.0
    assert round(table["Alice"]["avg_answer_seconds"], 2) == 8.0
    assert round(table["Alice"]["avg_talk_seconds"], 2) == 110.0
    assert table["Bob"]["missed"] == 2 and table["Bob"]["not_called_back"] == 1
    assert table["(no manager)"]["not_called_back"] == 0  # a withheld number cannot be called back
    assert f"manager={alice.pk}" in table["Alice"]["calls_url"]
    data = admin_client.get(reverse(MANAGERS), {"export": "csv"})
    text = b"".join(data.streaming_content).decode()
    assert "Missed, not called back" in text.splitlines()[0]


def test_pool_health(admin_client):
    now = timezone.now()
    pool = make_pool(size=3, name="Online", created_at=now - datetime.timedelta(days=10))
    numbers = list(pool.numbers.all())
    for index, number in enumerate(numbers[:2]):
        Lease.objects.create(number=number, pool=pool, session=make_session(),
                             leased_at=now - datetime.timedelta(hours=2, minutes=index),
                             last_seen_at=now - datetime.timedelta(hours=1),
                             released_at=now - datetime.timedelta(minutes=30))
    PoolStat.objects.create(pool=pool, hour=(now - datetime.timedelta(hours=2)).replace(
        minute=0, second=0, microsecond=0), leases=2, exhaustions=1, peak_concurrency=3)
    response = admin_client.get(reverse(POOLS))
    assert response.status_code == 200
    row = response.context["object_list"][0]
    expected = pool_health(pool, days=30)
    assert row.health.size == 3
    assert row.health.exhaustions == 1 == expected.exhaustions
    assert row.health.recommended_size == expected.recommended_size
    html = response.content.decode()
    assert "Online" in html and expected.advice in html
    assert reverse("wagtail_calltracking_pools:edit", args=[pool.pk]) in html
    response = admin_client.get(reverse(POOLS), {"export": "xlsx", "days": "7"})
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "Pool" and values[1][0] == "Online"


def _count(client, url, params=None):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, params or {}).status_code == 200
    return len(queries)


@pytest.mark.parametrize("group_by", ["channel", "keyword", "tracking_source"])
def test_source_report_queries_do_not_grow(admin_client, django_assert_max_num_queries, group_by):
    simple_call(keyword="k0", source=make_source(name="First", static_number=make_number()))
    few = _count(admin_client, reverse(SOURCES), {"group_by": group_by})
    sources = [make_source(name=f"S{i}", static_number=make_number()) for i in range(5)]
    for index in range(40):
        simple_call(channel=list(Channel.values)[index % 10], keyword=f"k{index}",
                    source=sources[index % 5])
        make_session(channel=list(Channel.values)[index % 10], keyword=f"k{index}")
    with django_assert_max_num_queries(few):
        response = admin_client.get(reverse(SOURCES), {"group_by": group_by})
    assert len(response.context["object_list"]) > 5


def test_manager_report_queries_do_not_grow(admin_client, django_assert_max_num_queries):
    make_call(manager=make_manager("M0"))
    few = _count(admin_client, reverse(MANAGERS))
    for index in range(20):
        make_call(manager=make_manager(f"M{index + 1}"), result=CallResult.MISSED)
    with django_assert_max_num_queries(few):
        response = admin_client.get(reverse(MANAGERS))
    assert len(response.context["object_list"]) == 21


def test_pool_health_queries_do_not_grow_with_leases(admin_client, django_assert_max_num_queries):
    now = timezone.now()
    pool = make_pool(size=2, created_at=now - datetime.timedelta(days=10))
    number = pool.numbers.first()
    few = _count(admin_client, reverse(POOLS))
    Lease.objects.bulk_create(
        Lease(number=number, pool=pool, leased_at=now - datetime.timedelta(minutes=10 * i + 5),
              last_seen_at=now - datetime.timedelta(minutes=10 * i), released_at=now - datetime.timedelta(minutes=10 * i))
        for i in range(200)
    )
    with django_assert_max_num_queries(few):
        admin_client.get(reverse(POOLS))


@pytest.mark.parametrize("url", [SOURCES, MANAGERS, POOLS])
@pytest.mark.parametrize(
    "params",
    [
        {"started_from": "not-a-date"},
        {"started_from": "2030-01-01", "started_to": "2020-01-01"},
        {"group_by": "nonsense", "attribution": "bogus", "ordering": "-nope"},
        {"days": "abc"},
        {"p": "99999"},
        {"site": "x", "channel": "moon"},
    ],
)
def test_bad_report_parameters_are_harmless(admin_client, url, params):
    simple_call()
    assert admin_client.get(reverse(url), params).status_code == 200


@pytest.mark.parametrize("days", [3, 30, 400])
def test_started_between_matches_the_plain_filter_whatever_the_plan(site, days):
    """On SQLite a long range is read by a sequential scan, a short one through the index:
    both give exactly the rows of the plain date filter (and on PostgreSQL too)."""
    from wagtail_calltracking.admin.queries import filter_started, started_between
    from wagtail_calltracking.models import Call

    now = timezone.now()
    for age in (0, 1, 2, 5, 20, 29, 31, 60, 200, 300):
        make_call(started_at=now - datetime.timedelta(days=age, hours=1))
        make_session(started_at=now - datetime.timedelta(days=age, hours=1))
    today = timezone.localdate()
    start = today - datetime.timedelta(days=days - 1)
    for queryset in (Call.objects.all(), make_session().__class__.objects.all()):
        fast = set(started_between(queryset, start, today).values_list("pk", flat=True))
        plain = set(filter_started(queryset, start, today).values_list("pk", flat=True))
        assert fast == plain and fast
    open_ended = set(started_between(Call.objects.all(), start, None).values_list("pk", flat=True))
    assert open_ended == set(filter_started(Call.objects.all(), start, None).values_list("pk", flat=True))


def test_pool_health_links_pools_only_for_those_who_may_edit_them(client, site):
    from .admin_fixtures import VIEW_CALLS

    pool = make_pool(size=1)
    client.force_login(make_admin_user(VIEW_CALLS))
    html = client.get(reverse(POOLS)).content.decode()
    assert pool.name in html
    assert reverse("wagtail_calltracking_pools:edit", args=[pool.pk]) not in html

"""``{% tracking_number %}`` and friends: precedence (every branch), rendering, laziness,
cache headers and the query budget — through the real middleware."""

import json
import logging

import pytest
from django.db import connection
from django.template import Context, Template, TemplateSyntaxError, engines
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from wagtail_calltracking.models import (
    CallTrackingSiteSettings,
    Channel,
    ExhaustionPolicy,
    Lease,
    NumberPool,
    PoolAudience,
    VisitorSession,
)
from wagtail_calltracking.numbers import selection
from wagtail_calltracking.tracking.context import TrackingContext

from .conftest import BROWSER_UA
from .factories import make_number, make_pool, make_source
from .numbers_fixtures import *  # noqa: F403 (fixtures)
from .numbers_fixtures import CANONICAL, cookies_of, render_through_middleware

pytestmark = pytest.mark.django_db

TAG = "{% load calltracking %}{% tracking_number %}"
NEWSPAPER = "+13125550142"
PAID = "/?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST"


def render(template=TAG, path="/", **kwargs):
    return render_through_middleware(template, path, **kwargs)


def html(response):
    return response.content.decode()


def is_private(response):
    return "private" in response.get("Cache-Control", "") and "Cookie" in response.get("Vary", "")


def pool_numbers(pool):
    return set(pool.numbers.values_list("number", flat=True))


# --- rendering -------------------------------------------------------------------------------


def test_canonical_number_when_nothing_applies(site_settings):
    response = render()
    assert html(response) == (
        '<a href="tel:+12125550100" class="calltracking-number">(212) 555-0100</a>'
    )
    assert not is_private(response)
    assert not Lease.objects.exists()


def test_nothing_configured_renders_nothing(site):
    assert html(render()) == ""


def test_as_variable_exposes_the_number(site_settings, newspaper):
    template = (
        "{% load calltracking %}{% tracking_number as num %}"
        "{{ num.e164 }}|{{ num.national }}|{{ num.international }}|{{ num.tel_href }}|"
        "{{ num.is_dynamic }}|{{ num.source }}|{{ num.kind }}|{{ num }}|{{ num.link }}"
    )
    response = render(template, "/?ct=newspaper")
    assert html(response) == (
        "+13125550142|(312) 555-0142|+1 312-555-0142|tel:+13125550142|False|Newspaper|static|"
        "(312) 555-0142|"
        '<a href="tel:+13125550142" class="calltracking-number">(312) 555-0142</a>'
    )


def test_format_class_label_and_link_arguments(site_settings):
    def out(arguments):
        return html(render("{% load calltracking %}{% tracking_number " + arguments + " %}"))

    assert out('format="international"').endswith(">+1 212-555-0100</a>")
    assert out('format="e164"').endswith(">+12125550100</a>")
    assert out('format="bogus"').endswith(">(212) 555-0100</a>")
    assert 'class="calltracking-number btn btn-call"' in out('class="btn btn-call"')
    assert out('label="Call now"') == '<a href="tel:+12125550100" class="calltracking-number">Call now</a>'
    assert out("link=False") == '<span class="calltracking-number">(212) 555-0100</span>'
    # A label from a variable is escaped (literals in templates are trusted, as in Django).
    escaped = Template("{% load calltracking %}{% tracking_number label=l %}").render(Context({"l": "<b>x</b>"}))
    assert escaped.endswith(">&lt;b&gt;x&lt;/b&gt;</a>")


def test_site_display_format_setting(site_settings):
    CallTrackingSiteSettings.objects.filter(pk=site_settings.pk).update(display_format="international")
    assert html(render()).endswith(">+1 212-555-0100</a>")


def test_tag_syntax_errors():
    with pytest.raises(TemplateSyntaxError, match="keyword arguments"):
        Template("{% load calltracking %}{% tracking_number 'x' %}")
    with pytest.raises(TemplateSyntaxError, match="unknown argument"):
        Template('{% load calltracking %}{% tracking_number colour="red" %}')
    with pytest.raises(TemplateSyntaxError, match="unknown argument"):
        Template('{% load calltracking %}{% canonical_number pool="x" %}')


def test_canonical_number_tag(site_settings, newspaper):
    template = (
        "{% load calltracking %}{% canonical_number %}|"
        "{% canonical_number as main %}{{ main.national }}|{{ main.e164 }}|{{ main.is_dynamic }}"
    )
    response = render(template, "/?ct=newspaper")  # never the visitor's number
    assert html(response) == (
        '<a href="tel:+12125550100" class="calltracking-canonical">(212) 555-0100</a>'
        "|(212) 555-0100|+12125550100|False"
    )
    assert not is_private(response)


def test_schema_org_json_ld_carries_the_canonical_number(site, site_settings, newspaper):
    site.site_name = "Acme </script><script>alert(1)</script>"
    site.save()
    response = render("{% load calltracking %}{% tracking_schema_org type='Plumber' %}", "/?ct=newspaper")
    content = html(response)
    assert content.startswith('<script type="application/ld+json">')
    assert "</script><script>" not in content
    data = json.loads(content.removeprefix('<script type="application/ld+json">').removesuffix("</script>"))
    assert data["@type"] == "Plumber"
    assert data["telephone"] == CANONICAL
    assert data["name"].startswith("Acme")
    assert data["url"] == "http://testserver/"


def test_schema_org_without_canonical_number_renders_nothing(site):
    assert html(render("{% load calltracking %}{% tracking_schema_org %}")) == ""


# --- precedence ------------------------------------------------------------------------------


def test_landing_parameter_shows_the_static_number_and_keeps_it(site_settings, newspaper, paid_search):
    first = render(path="/?ct=newspaper")
    assert NEWSPAPER in html(first)
    assert is_private(first)  # the number depends on how this visitor arrived
    # Next page: no parameter, same session (cookie) → still the newspaper number.
    second = render(path="/about/", cookies=cookies_of(first))
    assert NEWSPAPER in html(second)
    assert not Lease.objects.exists()


def test_landing_rule_beats_other_source_rules(site_settings, newspaper, paid_search):
    response = render(path=PAID + "&ct=newspaper")
    assert NEWSPAPER in html(response)


def test_vanity_path_rule(site_settings):
    flyer = make_source(name="Flyer", landing_path="/spring-offer", static_number=make_number(number="+13125550143"))
    assert flyer.static_number.number in html(render(path="/spring-offer/"))


def test_source_rule_with_a_pool_shows_a_dynamic_number(site_settings, paid_search, pool):
    response = render("{% load calltracking %}{% tracking_number as n %}{{ n.e164 }}|{{ n.is_dynamic }}|{{ n.source }}", PAID)
    e164, dynamic, source = html(response).split("|")
    assert e164 in pool_numbers(pool) and dynamic == "True" and source == "Paid search"
    assert is_private(response)
    lease = Lease.objects.get()
    assert lease.session == VisitorSession.objects.get() and lease.number.number == e164
    again = render("{% load calltracking %}{% tracking_number as n %}{{ n.e164 }}", "/services/", cookies=cookies_of(response))
    assert html(again) == e164
    assert Lease.objects.count() == 1


def test_static_source_rule_by_priority(site_settings, pool):
    make_source(name="Any paid", channel=Channel.PAID_SEARCH, pool=pool, priority=50)
    make_source(name="Google", utm_source="google", static_number=make_number(number="+13125550144"), priority=10)
    assert "+13125550144" in html(render(path=PAID))


def test_forced_source_beats_everything_and_is_not_personal(site_settings, newspaper, paid_search, pool):
    response = render('{% load calltracking %}{% tracking_number source="newspaper" %}', PAID)
    assert NEWSPAPER in html(response)
    assert not is_private(response)
    assert not Lease.objects.exists()
    by_id = render('{% load calltracking %}{% tracking_number source=' + str(newspaper.pk) + " %}", "/")
    assert NEWSPAPER in html(by_id)


def test_forced_pool_and_forced_pool_source(site_settings, newspaper, pool):
    response = render('{% load calltracking %}{% tracking_number pool="Online" as n %}{{ n.e164 }}', "/?ct=newspaper")
    assert html(response) in pool_numbers(pool)
    assert is_private(response)
    make_source(name="Web", pool=pool)  # no rules: used only when forced
    forced = render('{% load calltracking %}{% tracking_number source="Web" as n %}{{ n.e164 }}', "/")
    assert html(forced) in pool_numbers(pool)


def test_unknown_forced_source_or_pool_falls_back_to_canonical(site_settings, caplog):
    with caplog.at_level(logging.WARNING):
        assert CANONICAL in html(render('{% load calltracking %}{% tracking_number source="Nope" %}'))
        assert CANONICAL in html(render('{% load calltracking %}{% tracking_number pool="Nope" %}'))
    assert "no active source" in caplog.text and "no active pool" in caplog.text


def test_pool_for_all_visitors_serves_direct_traffic(site_settings, all_visitors_pool):
    response = render()
    assert any(number in html(response) for number in pool_numbers(all_visitors_pool))
    assert is_private(response)


def test_pool_for_non_direct_visitors(site_settings):
    campaigns = make_pool(size=2, site=site_settings.site, name="Campaigns", audience=PoolAudience.NON_DIRECT)
    direct = render()
    assert CANONICAL in html(direct) and not Lease.objects.exists()
    organic = render(HTTP_REFERER="https://www.google.com/search?q=plumber")
    assert any(n in html(organic) for n in pool_numbers(campaigns))
    # Continuing sessions: the channel is read with the lease (one query).
    assert any(n in html(render(path="/x/", cookies=cookies_of(organic))) for n in pool_numbers(campaigns))
    direct_again = render(path="/x/", cookies=cookies_of(direct))
    assert CANONICAL in html(direct_again)
    assert Lease.objects.count() == 1


def test_source_rules_beat_audience_pools(site_settings, newspaper, all_visitors_pool):
    assert NEWSPAPER in html(render(path="/?ct=newspaper"))


def test_exhausted_pool_shows_overflow_number_then_canonical(site_settings, paid_search, pool):
    for _ in range(3):
        render(path=PAID)
    assert CANONICAL in html(render(path=PAID))
    NumberPool.objects.filter(pk=pool.pk).update(fallback_number=make_number(number="+12125550188"))
    from wagtail_calltracking.numbers.rules import invalidate_config

    invalidate_config()
    response = render("{% load calltracking %}{% tracking_number as n %}{{ n.e164 }}|{{ n.kind }}", PAID)
    assert html(response) == "+12125550188|overflow"
    assert is_private(response)


def test_exhausted_pool_reusing_the_oldest_number(site_settings, paid_search, pool):
    NumberPool.objects.filter(pk=pool.pk).update(exhaustion_policy=ExhaustionPolicy.REUSE_OLDEST)
    from wagtail_calltracking.numbers.rules import invalidate_config

    invalidate_config()
    for _ in range(4):
        render(path=PAID)
    assert Lease.objects.filter(reclaimed=True).count() == 1


# --- who gets nothing -------------------------------------------------------------------------


def test_bots_get_the_canonical_number_and_no_rows(site_settings, all_visitors_pool):
    response = render(user_agent="Googlebot/2.1 (+http://www.google.com/bot.html)")
    assert CANONICAL in html(response)
    assert not Lease.objects.exists() and not VisitorSession.objects.exists()


def test_without_the_middleware_the_tag_is_inert_and_cacheable(site_settings, all_visitors_pool, newspaper):
    request = RequestFactory(HTTP_USER_AGENT=BROWSER_UA).get("/?ct=newspaper")
    out = engines["django"].from_string(TAG).render({}, request)
    assert CANONICAL in out
    assert not Lease.objects.exists()
    forced = engines["django"].from_string('{% load calltracking %}{% tracking_number source="Newspaper" %}').render({}, request)
    assert NEWSPAPER in forced


def test_template_without_request_uses_the_default_site(site_settings):
    assert CANONICAL in Template(TAG).render(Context({}))


def test_page_without_a_number_leases_nothing(site_settings, paid_search, pool):
    response = render("<p>No number here</p>", PAID)
    assert VisitorSession.objects.count() == 1  # the visit is tracked…
    assert not Lease.objects.exists()  # …but nothing is leased
    assert not is_private(response)


def test_without_consent_dynamic_numbers_are_not_shown(site_settings, all_visitors_pool, settings):
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "CONSENT": {"cookie": "consent", "accepted": ["yes"]}}
    assert CANONICAL in html(render())
    assert not Lease.objects.exists() and not VisitorSession.objects.exists()
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "DYNAMIC_NUMBERS_WITHOUT_CONSENT": True}
    response = render()
    assert any(n in html(response) for n in pool_numbers(all_visitors_pool))
    lease = Lease.objects.get()
    assert lease.session_id is None  # bound to this page view only
    assert not VisitorSession.objects.exists()
    assert is_private(response)


def test_tag_errors_never_break_the_page(site_settings, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(selection.Selector, "select", broken)
    with caplog.at_level(logging.ERROR):
        assert CANONICAL in html(render())
    assert "failed" in caplog.text


# --- laziness and query budget ---------------------------------------------------------------


def returning_visitor_request(path, first_response):
    """A request of a returning visitor with the middleware's context attached, its Wagtail
    site already resolved (as Wagtail's page serving does before rendering)."""
    from wagtail.models import Site

    request = RequestFactory(HTTP_USER_AGENT=BROWSER_UA).get(path)
    request.COOKIES.update(cookies_of(first_response))
    request.calltracking = TrackingContext.for_request(request)
    Site.find_for_request(request)
    return request


def count_tag_queries(template, request):
    compiled = engines["django"].from_string(template)
    with CaptureQueriesContext(connection) as queries:
        out = compiled.render({}, request)
    return out, queries


def test_static_source_costs_no_query_on_a_warm_cache(site_settings, newspaper, paid_search):
    first = render(path="/?ct=newspaper")
    request = returning_visitor_request("/next/", first)
    out, queries = count_tag_queries(TAG * 3 + "{% load calltracking %}{% canonical_number %}{% tracking_schema_org %}", request)
    assert out.count(NEWSPAPER) == 3
    assert len(queries) == 0, [q["sql"] for q in queries]
    assert request.calltracking.personalised


def test_pool_number_with_a_live_lease_costs_one_select(site_settings, paid_search, pool):
    first = render(path=PAID)
    request = returning_visitor_request("/next/", first)
    out, queries = count_tag_queries(TAG * 5 + '{% tracking_number pool="Online" %}', request)
    numbers = [n for n in pool_numbers(pool) if n in out]
    assert len(numbers) == 1 and out.count(numbers[0]) == 6  # one lease, shared by all tags
    assert len(queries) == 1 and queries[0]["sql"].upper().startswith("SELECT")


def test_many_tags_cost_one_lookup(site_settings, all_visitors_pool):
    first = render()
    one = count_tag_queries(TAG, returning_visitor_request("/a/", first))[1]
    many = count_tag_queries(TAG * 10 + "{% tracking_number as x %}{{ x.link }}", returning_visitor_request("/b/", first))[1]
    assert len(one) == len(many) == 1


def test_new_visitor_pays_session_creation_plus_the_lease_transaction_once(site_settings, paid_search, pool):
    from wagtail.models import Site

    request = RequestFactory(HTTP_USER_AGENT=BROWSER_UA).get(PAID)
    request.calltracking = TrackingContext.for_request(request)
    Site.find_for_request(request)
    out, queries = count_tag_queries(TAG * 4, request)
    assert Lease.objects.count() == 1
    lease_inserts = [q for q in queries if q["sql"].upper().startswith("INSERT") and "lease" in q["sql"].lower()]
    assert len(lease_inserts) == 1
    # Session rows (visitor + session) + the lease transaction; no lookup of a lease that
    # cannot exist yet.
    assert not any("visitorsession" in q["sql"].lower() and "lease" in q["sql"].lower() for q in queries if q["sql"].upper().startswith("SELECT"))


# --- the example site -------------------------------------------------------------------------


def test_example_site_base_template_renders_all_tags(client, home_page, site_settings, paid_search, pool):
    response = client.get(PAID)
    content = response.content.decode()
    assert response.status_code == 200
    assert 'class="calltracking-number"' in content
    assert "Main line: (212) 555-0100" in content
    assert '"telephone": "+12125550100"' in content
    shown = [n for n in pool_numbers(pool) if n in content]
    assert len(shown) == 1
    assert "private" in response["Cache-Control"]
    # Same visitor, another page: same number.
    assert shown[0] in client.get("/").content.decode()

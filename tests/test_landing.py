"""Source and channel classification of a landing (pure functions)."""

import pytest
from django.test import override_settings

from wagtail_calltracking.models import Channel
from wagtail_calltracking.tracking.ga import client_id_from_cookie, ga_ids_from_cookies, session_id_from_cookie
from wagtail_calltracking.tracking.landing import campaign_key, classify, parse_query
from wagtail_calltracking.tracking.referrers import search_engine_for, social_network_for
from wagtail_calltracking.tracking.text import clean_text
from wagtail_calltracking.tracking.useragent import looks_like_bot, parse_user_agent

OWN = ("www.acme.test",)


@pytest.mark.parametrize(
    "query, referrer, channel, source, medium, keyword",
    [
        # utm tagging
        ("utm_source=google&utm_medium=cpc&utm_term=plumber", "", Channel.PAID_SEARCH, "google", "cpc", "plumber"),
        ("utm_source=bing&utm_medium=ppc&utm_campaign=spring", "", Channel.PAID_SEARCH, "bing", "ppc", ""),
        ("utm_source=facebook&utm_medium=cpc", "", Channel.PAID_SOCIAL, "facebook", "cpc", ""),
        ("utm_source=facebook&utm_medium=paid_social", "", Channel.PAID_SOCIAL, "facebook", "paid_social", ""),
        ("utm_source=facebook&utm_medium=social", "", Channel.ORGANIC_SOCIAL, "facebook", "social", ""),
        ("utm_source=newsletter&utm_medium=email", "", Channel.EMAIL, "newsletter", "email", ""),
        ("utm_source=gdn&utm_medium=display", "", Channel.DISPLAY, "gdn", "display", ""),
        ("utm_source=partner&utm_medium=referral", "", Channel.REFERRAL, "partner", "referral", ""),
        ("utm_source=radio&utm_medium=offline", "", Channel.OFFLINE, "radio", "offline", ""),
        ("utm_source=whatever&utm_medium=weird", "", Channel.OTHER_CAMPAIGN, "whatever", "weird", ""),
        ("utm_source=google&utm_medium=organic", "", Channel.ORGANIC_SEARCH, "google", "organic", ""),
        # click ids without utm (auto-tagging)
        ("gclid=EAIaIQ", "https://www.google.com/", Channel.PAID_SEARCH, "google", "cpc", ""),
        ("gbraid=0AAAA", "", Channel.PAID_SEARCH, "google", "cpc", ""),
        ("msclkid=abc", "https://www.bing.com/", Channel.PAID_SEARCH, "bing", "cpc", ""),
        ("yclid=123", "", Channel.PAID_SEARCH, "yandex", "cpc", ""),
        ("ttclid=E.C.P", "", Channel.PAID_SOCIAL, "tiktok", "paid_social", ""),
        ("li_fat_id=x-y", "", Channel.PAID_SOCIAL, "linkedin", "paid_social", ""),
        ("fbclid=IwAR", "https://l.facebook.com/", Channel.ORGANIC_SOCIAL, "facebook", "social", ""),
        # click id + utm that does not say paid → the click id decides
        ("utm_source=google&utm_medium=spring&gclid=X", "", Channel.PAID_SEARCH, "google", "spring", ""),
        # referrers
        ("", "https://www.bing.com/search?q=emergency+plumber", Channel.ORGANIC_SEARCH, "bing", "organic",
         "emergency plumber"),
        ("", "https://yandex.ru/search/?text=%D1%81%D0%B0%D0%BD%D1%82%D0%B5%D1%85%D0%BD%D0%B8%D0%BA",
         Channel.ORGANIC_SEARCH, "yandex", "organic", "сантехник"),
        ("", "https://duckduckgo.com/?q=drain+cleaning", Channel.ORGANIC_SEARCH, "duckduckgo", "organic",
         "drain cleaning"),
        ("", "https://search.yahoo.com/search?p=water+heater", Channel.ORGANIC_SEARCH, "yahoo", "organic",
         "water heater"),
        ("", "https://www.baidu.com/s?wd=plumber", Channel.ORGANIC_SEARCH, "baidu", "organic", "plumber"),
        ("", "https://www.google.co.uk/", Channel.ORGANIC_SEARCH, "google", "organic", ""),
        ("", "https://l.facebook.com/l.php?u=x", Channel.ORGANIC_SOCIAL, "facebook", "social", ""),
        ("", "https://t.co/abc", Channel.ORGANIC_SOCIAL, "twitter", "social", ""),
        ("", "https://www.linkedin.com/feed/", Channel.ORGANIC_SOCIAL, "linkedin", "social", ""),
        ("", "https://mail.google.com/mail/u/0/", Channel.EMAIL, "mail.google.com", "email", ""),
        ("", "https://www.yelp.com/biz/acme", Channel.REFERRAL, "yelp.com", "referral", ""),
        ("", "https://docs.google.com/document/d/1", Channel.REFERRAL, "docs.google.com", "referral", ""),
        ("", "", Channel.DIRECT, "(direct)", "(none)", ""),
        # internal referrer: direct (GA excludes self-referrals)
        ("", "https://www.acme.test/services/", Channel.DIRECT, "(direct)", "(none)", ""),
        # utm_term wins over the referrer's keyword
        ("utm_source=bing&utm_medium=cpc&utm_term=boiler", "https://www.bing.com/search?q=other",
         Channel.PAID_SEARCH, "bing", "cpc", "boiler"),
        # offline vanity landing parameter
        ("ct=newspaper", "", Channel.OFFLINE, "newspaper", "offline", ""),
    ],
)
def test_classify(query, referrer, channel, source, medium, keyword):
    landing = classify(query, referrer, OWN, path="/")
    assert (landing.channel, landing.source, landing.medium, landing.keyword) == (
        channel,
        source,
        medium,
        keyword,
    )


def test_classify_keeps_campaign_fields_and_click_ids():
    landing = classify(
        "utm_source=google&utm_medium=cpc&utm_campaign=Spring%20Sale&utm_content=ad1&utm_term=plumber"
        "&gclid=TEST&fbclid=F",
        "https://www.google.com/",
        OWN,
        path="/landing/",
    )
    assert landing.campaign == "Spring Sale"
    assert landing.content == "ad1"
    assert landing.term == "plumber"
    assert landing.click_ids == {"gclid": "TEST", "fbclid": "F"}
    assert landing.referrer_domain == "google.com"
    assert landing.landing_path == "/landing/"
    assert landing.session_fields()["gclid"] == "TEST"


@override_settings(WAGTAIL_CALLTRACKING={"LANDING_PARAMETER": "src"})
def test_landing_parameter_is_configurable():
    assert classify("src=billboard", "", OWN).channel == Channel.OFFLINE
    assert classify("ct=billboard", "", OWN).channel == Channel.DIRECT


def test_campaign_key_changes_with_campaign_parameters_only():
    base = campaign_key(parse_query("utm_source=google&utm_medium=cpc"))
    assert base
    assert base == campaign_key(parse_query("utm_medium=cpc&utm_source=google&page=2"))
    assert base != campaign_key(parse_query("utm_source=bing&utm_medium=cpc"))
    assert campaign_key(parse_query("page=2&q=x")) == ""


def test_parse_query_never_raises_and_caps_fields():
    huge = "&".join(f"k{i}=v" for i in range(5000))
    assert len(parse_query(huge)) <= 200
    assert parse_query("%%%=%ZZ&utm_source=%FF%FE") == {"%%%": "%ZZ", "utm_source": "\ufffd\ufffd"}
    assert parse_query("UTM_SOURCE=X")["utm_source"] == "X"


def test_clean_text():
    assert clean_text("a\x00b\r\nc", 10) == "abc"
    assert clean_text("x" * 5000, 255) == "x" * 255
    assert clean_text(b"\xff\xfe", 10) == "\ufffd\ufffd"
    assert clean_text("\udcff", 10) == "?"
    assert clean_text(None, 5) == ""


def test_referrer_tables():
    assert search_engine_for("www.google.de")[0] == "google"
    assert search_engine_for("news.google.com") is None
    assert search_engine_for("example.com") is None
    assert social_network_for("m.facebook.com") == "facebook"
    assert social_network_for("pinterest.co.uk") == "pinterest"
    assert social_network_for("example.com") is None


@pytest.mark.parametrize(
    "ua, bot",
    [
        ("", True),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0)", True),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("python-requests/2.31.0", True),
        ("curl/8.0.1", True),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
         True),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
         False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/17.5 Mobile/15E148 Safari/604.1", False),
    ],
)
def test_bot_precheck(ua, bot):
    assert looks_like_bot(ua) is bot


def test_parse_user_agent_devices():
    iphone = parse_user_agent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1"
    )
    assert iphone["device_type"] == "mobile" and iphone["os"] == "iOS" and iphone["browser"] == "Mobile Safari"
    ipad = parse_user_agent(
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1"
    )
    assert ipad["device_type"] == "tablet"
    desktop = parse_user_agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    )
    assert desktop["device_type"] == "desktop" and desktop["browser"] == "Chrome" and desktop["os"] == "Windows"
    assert parse_user_agent("\x00\xff garbage")["device_type"] == "other"


def test_ga_cookie_parsing():
    assert client_id_from_cookie("GA1.1.1197596843.1673515099") == "1197596843.1673515099"
    assert client_id_from_cookie("GA1.2-3.111.222") == "111.222"
    assert client_id_from_cookie("garbage") == ""
    assert client_id_from_cookie("GA1.1.x.<script>") == ""
    assert session_id_from_cookie("GS1.1.1673515099.4.1.1673515200.0.0.0") == "1673515099"
    assert session_id_from_cookie("GS2.1.s1673515099$o4$g1$t1673515200$j60$l0$h0") == "1673515099"
    assert session_id_from_cookie("GS2.1.o4$s1673515099$g1") == "1673515099"  # any order
    assert session_id_from_cookie("GS3.whatever") == ""
    client, sessions = ga_ids_from_cookies(
        {"_ga": "GA1.1.111.222", "_ga_ABC123": "GS1.1.999.1.1.1.0.0.0", "_ga_bad!": "GS1.1.5"}
    )
    assert client == "111.222" and sessions == {"G-ABC123": "999"}

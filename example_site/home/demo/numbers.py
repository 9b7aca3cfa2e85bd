"""Demo tracking numbers: the combined method on the example site.

* a pool of 10 numbers for online visitors (every visitor except direct traffic), with an
  overflow number for when all 10 are taken;
* a paid-search source using that pool (keyword-level tracking):
  ``/?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST`` shows a pool number;
* static numbers for two offline sources, each with a vanity landing parameter and a vanity
  path: the newspaper (``/?ct=newspaper``, or its landing page ``/paper/``) and the billboard
  (``/?ct=billboard``, or ``/billboard``, a Wagtail redirect to ``/?ct=billboard``);
* a static number for visitors referred by Yelp (a referrer-domain rule);
* the site's canonical number (the business line, kept in schema.org markup) and the
  fallback forwarding destination.

All numbers use the ``demo`` provider (calls are simulated with
``manage.py calltracking_simulate_call``). Idempotent.
"""

from wagtail.contrib.redirects.models import Redirect
from wagtail.models import Site

from home.models import ContentPage
from wagtail_calltracking.models import (
    CallTrackingSiteSettings,
    Channel,
    ExhaustionPolicy,
    NumberPool,
    PoolAudience,
    Source,
    TrackingNumber,
)

BUSINESS_LINE = "+12175550100"
POOL_NUMBERS = [f"+121755501{index:02d}" for index in range(10, 20)]
OVERFLOW_NUMBER = "+12175550130"
NEWSPAPER_NUMBER = "+12175550120"
BILLBOARD_NUMBER = "+12175550121"
YELP_NUMBER = "+12175550122"


def _number(e164, site, label, pool=None):
    number, _ = TrackingNumber.objects.update_or_create(
        number=e164,
        defaults={"label": label, "site": site, "provider": "demo", "pool": pool, "active": True},
    )
    return number


def _source(name, site, **fields):
    source, _ = Source.objects.update_or_create(name=name, site=site, defaults={"active": True, **fields})
    return source


def _paper_page(site):
    """A real landing page at the newspaper's vanity path (/paper/), hidden from menus."""
    home = site.root_page.specific
    page = home.get_children().filter(slug="paper").first()
    if page is None:
        page = home.add_child(
            instance=ContentPage(
                title="Newspaper readers' offer",
                slug="paper",
                intro="Spring Gazette readers: 10% off any repair this month.",
                body="<p>Mention the Gazette when you call the number above.</p>",
                show_in_menus=False,
            )
        )
        page.save_revision().publish()
    return page


def load(stdout):
    site = Site.objects.filter(is_default_site=True).select_related("root_page").first()
    if site is None:
        stdout.write("  no default site: run the pages step first")
        return

    settings_row, _ = CallTrackingSiteSettings.objects.get_or_create(site=site)
    settings_row.canonical_number = settings_row.canonical_number or BUSINESS_LINE
    settings_row.fallback_forward_to = settings_row.fallback_forward_to or BUSINESS_LINE
    settings_row.save()

    overflow = _number(OVERFLOW_NUMBER, site, "Website overflow (pool exhausted)")
    pool, _ = NumberPool.objects.update_or_create(
        name="Online visitors",
        defaults={
            "site": site,
            "active": True,
            "audience": PoolAudience.NON_DIRECT,
            "hold_minutes": 20,
            "cooldown_minutes": 10,
            "exhaustion_policy": ExhaustionPolicy.FALLBACK,
            "fallback_number": overflow,
            "forward_to": BUSINESS_LINE,
        },
    )
    for index, e164 in enumerate(POOL_NUMBERS, start=1):
        _number(e164, site, f"Website pool #{index}", pool=pool)

    _source(
        "Paid search",
        site,
        channel=Channel.PAID_SEARCH,
        pool=pool,
        static_number=None,
        priority=10,
        report_channel=Channel.PAID_SEARCH,
    )
    _source(
        "Newspaper (Spring Gazette)",
        site,
        landing_parameter="newspaper",
        landing_path="/paper",
        static_number=_number(NEWSPAPER_NUMBER, site, "Spring Gazette ad"),
        pool=None,
        priority=20,
        report_channel=Channel.OFFLINE,
    )
    _source(
        "Billboard (Route 66)",
        site,
        landing_parameter="billboard",
        landing_path="/billboard",
        static_number=_number(BILLBOARD_NUMBER, site, "Route 66 billboard"),
        pool=None,
        priority=20,
        report_channel=Channel.OFFLINE,
    )
    _source(
        "Yelp listing",
        site,
        referrer_domain="yelp.com",
        static_number=_number(YELP_NUMBER, site, "Yelp business page"),
        pool=None,
        priority=30,
        report_channel=Channel.REFERRAL,
    )

    _paper_page(site)
    Redirect.objects.update_or_create(
        old_path=Redirect.normalise_path("/billboard"),
        site=site,
        defaults={"redirect_link": "/?ct=billboard", "is_permanent": False},
    )
    stdout.write(
        f"  pool “{pool.name}” ({len(POOL_NUMBERS)} numbers, overflow {OVERFLOW_NUMBER}), "
        "sources: paid search, newspaper (/?ct=newspaper, /paper/), billboard "
        "(/?ct=billboard, /billboard), Yelp; canonical number " + settings_row.canonical_number
    )

"""Cost of CallTrackingMiddleware on the example home page, measured side by side.

Serves the page through Django's WSGI handler as a WSGI server does (call, send the body,
close) with and without the middleware, interleaving requests so machine noise hits both
equally, and prints the ratio (with / without) of the total time and of the time to response
(the body in the server's hands; page views are written after it, on close) for: (a) a repeat
page view of a known visitor, (b) a new visitor, (c) a bot and a static request; plus the
statements of each. Goals (total time): (a) ≤ 1.05×, (b) ≤ 1.10×, (c) ≤ 1.02×.

    .venv/bin/python bench/middleware.py [--rounds 30 --batch 40]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ct_bench .venv/bin/python bench/middleware.py
"""

import argparse

from _setup import WSGIDriver, median, setup_django

BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
MIDDLEWARE = "wagtail_calltracking.middleware.CallTrackingMiddleware"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=40)
    args = parser.parse_args()

    engine = setup_django()
    from io import StringIO

    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from home.demo import pages

    pages.load(StringIO())
    settings.ROOT_URLCONF = "urls"  # bench/urls.py: the site plus static files

    def driver(with_middleware, user_agent=BROWSER_UA):
        middleware = list(settings.MIDDLEWARE)
        if not with_middleware:
            middleware.remove(MIDDLEWARE)
        return WSGIDriver(middleware, HTTP_USER_AGENT=user_agent)

    def known_visitor(with_middleware):
        d = driver(with_middleware)
        d.get("/?utm_source=google&utm_medium=cpc&utm_term=plumber")
        return lambda: d.get("/")

    def new_visitor(with_middleware):
        d = driver(with_middleware)

        def request():
            d.clear_cookies()
            return d.get("/")

        return request

    def bot(with_middleware):
        d = driver(with_middleware, BOT_UA)
        return lambda: d.get("/")

    def static(with_middleware):
        d = driver(with_middleware)
        return lambda: d.get("/static/wagtailadmin/css/core.css")

    scenarios = [
        ("(a) repeat page view, known visitor", known_visitor, 1.05),
        ("(b) new visitor", new_visitor, 1.10),
        ("(c) bot", bot, 1.02),
        ("(c) static file", static, 1.02),
    ]

    print(f"wagtail-calltracking middleware benchmark — database: {engine}, "
          f"{args.rounds} rounds × {args.batch} requests per side, interleaved request by request")
    print(f"{'scenario':38} {'without':>9} {'with':>9} {'ratio':>7} {'goal':>6}  {'to response':>11}  "
          f"statements without → with")
    for name, factory, goal in scenarios:
        off, on = factory(False), factory(True)
        for fn in (off, on):  # warm up
            for _ in range(5):
                fn()
        ratios, handed_ratios, t_off, t_on = [], [], [], []
        for round_ in range(args.rounds):
            samples = {off: ([], []), on: ([], [])}
            for _ in range(args.batch):
                for fn in ((off, on) if round_ % 2 == 0 else (on, off)):
                    to_response, total = fn()
                    samples[fn][0].append(to_response)
                    samples[fn][1].append(total)
            handed_off, total_off = (median(v) for v in samples[off])
            handed_on, total_on = (median(v) for v in samples[on])
            t_off.append(total_off)
            t_on.append(total_on)
            ratios.append(total_on / total_off)
            handed_ratios.append(handed_on / handed_off)
        counts = []
        for fn in (off, on):
            with CaptureQueriesContext(connection) as ctx:
                fn()
            counts.append(len(ctx.captured_queries))
        ratio = median(ratios)
        verdict = "ok" if ratio <= goal else "OVER"
        print(
            f"{name:38} {median(t_off) * 1000:7.2f}ms {median(t_on) * 1000:7.2f}ms {ratio:6.3f}× "
            f"{f'≤{goal:.2f}':>6}  {median(handed_ratios):10.3f}×  {counts[0]} → {counts[1]} {verdict}"
        )


if __name__ == "__main__":
    main()

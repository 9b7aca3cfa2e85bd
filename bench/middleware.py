"""Cost of CallTrackingMiddleware on the example home page, measured side by side.

Serves the page through Django's handler with and without the middleware, interleaving
batches so machine noise hits both equally, and prints the time ratio (with / without) for:
(a) a repeat page view of a known visitor, (b) a new visitor, (c) a bot and a static request;
plus the query counts of each. Goals: (a) ≤ 1.10×, (c) ≤ 1.02×.

    .venv/bin/python bench/middleware.py [--rounds 30 --batch 40]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ct_bench .venv/bin/python bench/middleware.py
"""

import argparse
import time

from _setup import median, setup_django

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
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext
    from home.demo import pages

    pages.load(StringIO())
    settings.ROOT_URLCONF = "urls"  # bench/urls.py: the site plus static files

    def client(with_middleware, **headers):
        middleware = list(settings.MIDDLEWARE)
        if not with_middleware:
            middleware.remove(MIDDLEWARE)
        with override_settings(MIDDLEWARE=middleware):
            c = Client(**headers)
            c.handler.load_middleware()
        return c

    def known_visitor(with_middleware):
        c = client(with_middleware, HTTP_USER_AGENT=BROWSER_UA)
        c.get("/?utm_source=google&utm_medium=cpc&utm_term=plumber")
        return lambda: c.get("/")

    def new_visitor(with_middleware):
        template = client(with_middleware, HTTP_USER_AGENT=BROWSER_UA)

        def request():
            template.cookies.clear()
            return template.get("/")

        return request

    def bot(with_middleware):
        c = client(with_middleware, HTTP_USER_AGENT=BOT_UA)
        return lambda: c.get("/")

    def static(with_middleware):
        c = client(with_middleware, HTTP_USER_AGENT=BROWSER_UA)
        return lambda: c.get("/static/wagtailadmin/css/core.css")

    scenarios = [
        ("(a) repeat page view, known visitor", known_visitor, 1.10),
        ("(b) new visitor", new_visitor, None),
        ("(c) bot", bot, 1.02),
        ("(c) static file", static, 1.02),
    ]

    print(f"wagtail-calltracking middleware benchmark — database: {engine}, "
          f"{args.rounds} rounds × {args.batch} requests per side")
    print(f"{'scenario':40} {'without':>10} {'with':>10} {'ratio':>7} {'goal':>6}  queries without → with")
    for name, factory, goal in scenarios:
        off, on = factory(False), factory(True)
        for fn in (off, on):  # warm up
            for _ in range(5):
                assert fn().status_code in (200, 304), name
        ratios, t_off, t_on = [], [], []
        for round_ in range(args.rounds):
            order = (off, on) if round_ % 2 == 0 else (on, off)
            timings = {}
            for fn in order:
                start = time.perf_counter()
                for _ in range(args.batch):
                    fn()
                timings[fn] = (time.perf_counter() - start) / args.batch
            t_off.append(timings[off])
            t_on.append(timings[on])
            ratios.append(timings[on] / timings[off])
        counts = []
        for fn in (off, on):
            with CaptureQueriesContext(connection) as ctx:
                fn()
            counts.append(len(ctx.captured_queries))
        ratio = median(ratios)
        verdict = "" if goal is None else ("ok" if ratio <= goal else "OVER")
        print(
            f"{name:40} {median(t_off) * 1000:8.2f}ms {median(t_on) * 1000:8.2f}ms {ratio:6.3f}× "
            f"{(f'≤{goal:.2f}' if goal else '-'):>6}  {counts[0]} → {counts[1]} {verdict}"
        )


if __name__ == "__main__":
    main()

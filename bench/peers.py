"""wagtail-calltracking against the two packages a Django user would otherwise pick for visitor
tracking, on the example home page, side by side in one process:

* **django-request** — one row per request (no visitor, no session, no attribution);
* **django-tracking2** — a Django session, a visitor row and a page view per request.

Each variant is the example site's middleware stack with one tracking middleware at the same
place (none for the baseline). Rounds are interleaved request by request (every variant in
turn, in a rotating order), so machine noise hits all of them alike; figures are medians (per
round, then over rounds).
Requests go through Django's WSGI handler as a WSGI server drives it, so two times are measured:
**time to response** (the body is in the server's hands: what the visitor waits for) and
**total** (after the response is closed: the server's whole cost, including work done after
the response). Ratios are to the baseline's time measured in the same round.

Installs nothing: the peers come from the ``bench`` extra (``pip install -e ".[bench]"``).

    .venv/bin/python bench/peers.py [--rounds 30 --batch 40]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ct_bench .venv/bin/python bench/peers.py
"""

import argparse
import importlib.util
import sys

from _setup import WSGIDriver, median, setup_django

BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
OURS = "wagtail_calltracking.middleware.CallTrackingMiddleware"
PEERS = {
    "django-request": ("request", "request.middleware.RequestMiddleware"),
    "django-tracking2": ("tracking", "tracking.middleware.VisitorTrackingMiddleware"),
}
#: Goals of wagtail-calltracking's ratios (total time), as in bench/middleware.py.
GOALS = {"repeat view": 1.05, "new visitor": 1.10}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=40)
    args = parser.parse_args()

    missing = [name for name, (module, _) in PEERS.items() if importlib.util.find_spec(module) is None]
    if missing:
        sys.exit(f"Missing {', '.join(missing)}: install the bench extra (pip install -e '.[bench]').")

    engine = setup_django("peers_settings")
    from io import StringIO

    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from home.demo import pages

    pages.load(StringIO())
    settings.ROOT_URLCONF = "urls"  # bench/urls.py: the site plus static files

    baseline = [m for m in settings.MIDDLEWARE if m != OURS]
    position = list(settings.MIDDLEWARE).index(OURS)
    stacks = {"no tracking": baseline, "wagtail-calltracking": list(settings.MIDDLEWARE)}
    for name, (_, middleware) in PEERS.items():
        stacks[name] = [*baseline[:position], middleware, *baseline[position:]]

    def repeat_view(stack):
        driver = WSGIDriver(stack, HTTP_USER_AGENT=BROWSER_UA, REMOTE_ADDR="203.0.113.9")
        driver.get("/?utm_source=google&utm_medium=cpc&utm_term=plumber")  # the landing
        return lambda: driver.get("/")

    def new_visitor(stack):
        driver = WSGIDriver(stack, HTTP_USER_AGENT=BROWSER_UA, REMOTE_ADDR="203.0.113.9")

        def request():
            driver.clear_cookies()
            return driver.get("/")

        return request

    print(f"Tracking packages compared — database: {engine}, {args.rounds} interleaved rounds × "
          f"{args.batch} requests per variant and scenario")
    summary = {}
    for scenario, factory in (("repeat view", repeat_view), ("new visitor", new_visitor)):
        runs = {name: factory(stack) for name, stack in stacks.items()}
        for run in runs.values():  # warm up (caches, connections, first rows)
            for _ in range(10):
                run()
        names = list(runs)
        totals = {name: [] for name in names}
        handed = {name: [] for name in names}
        total_ratios = {name: [] for name in names}
        handed_ratios = {name: [] for name in names}
        for round_ in range(args.rounds):
            # Interleaved request by request (in a rotating order): a burst of load on this
            # shared machine hits every variant alike. Per round, each variant's median.
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            if round_ % 2:
                order.reverse()
            samples = {name: ([], []) for name in names}
            for _ in range(args.batch):
                for name in order:
                    to_response, total = runs[name]()
                    samples[name][0].append(to_response)
                    samples[name][1].append(total)
            this_round = {name: (median(a), median(b)) for name, (a, b) in samples.items()}
            base_handed, base_total = this_round["no tracking"]
            for name, (to_response, total) in this_round.items():
                handed[name].append(to_response)
                totals[name].append(total)
                handed_ratios[name].append(to_response / base_handed)
                total_ratios[name].append(total / base_total)
        queries = {}
        for name, run in runs.items():
            with CaptureQueriesContext(connection) as ctx:
                run()
            queries[name] = len(ctx.captured_queries)

        print(f"\n{scenario}")
        print(f"  {'variant':22} {'total':>9} {'ratio':>7} {'to response':>12} {'ratio':>7} {'queries':>8}")
        for name in names:
            ratio, ttr_ratio = median(total_ratios[name]), median(handed_ratios[name])
            summary[(scenario, name)] = (ratio, ttr_ratio, queries[name])
            print(f"  {name:22} {median(totals[name]) * 1000:7.3f}ms {ratio:6.3f}× "
                  f"{median(handed[name]) * 1000:10.3f}ms {ttr_ratio:6.3f}× {queries[name]:8d}")

    print(f"\nSummary ({engine}) — ratio to no tracking, total / time to response:")
    print(f"  {'':22} {'repeat view':>18} {'new visitor':>18}")
    for name in stacks:
        if name == "no tracking":
            continue
        cells = [f"{summary[(s, name)][0]:.3f}× / {summary[(s, name)][1]:.3f}×" for s in GOALS]
        print(f"  {name:22} {cells[0]:>18} {cells[1]:>18}")
    for scenario, goal in GOALS.items():
        ours_total, ours_ttr, _ = summary[(scenario, "wagtail-calltracking")]
        best_total = min(summary[(scenario, peer)][0] for peer in PEERS)
        best_ttr = min(summary[(scenario, peer)][1] for peer in PEERS)
        verdicts = [
            f"goal ≤{goal:.2f}×: {'ok' if ours_total <= goal else 'OVER'}",
            f"total ahead of both peers: {'yes' if ours_total < best_total else 'NO'}",
            f"time to response ahead: {'yes' if ours_ttr < best_ttr else 'NO'}",
        ]
        print(f"  {scenario}: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()

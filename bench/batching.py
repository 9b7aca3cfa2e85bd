"""What batching page-view INSERTs would save: the after-response page view of a continuing
session as production runs it (one guarded INSERT, committed asynchronously) against the same
rows coalesced into multi-row INSERTs of k rows, timed side by side (interleaved rounds).

Prints the database time per page view for each k and what it amounts to at a given request
rate (default 200 page views per second), i.e. the share of one core the INSERTs cost.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ct_bench .venv/bin/python bench/batching.py [--rate 200]
"""

import argparse
import time

from _setup import median, setup_django


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200, help="page views per second")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rows", type=int, default=400, help="page views per round and variant")
    args = parser.parse_args()

    engine = setup_django()
    from django.db import connection
    from django.utils import timezone

    from wagtail_calltracking.models import PageView, Visitor, VisitorSession
    from wagtail_calltracking.tracking import writes

    session = VisitorSession.objects.create(visitor=Visitor.objects.create())
    view = {"viewed_at": timezone.now(), "path": "/services/drain-cleaning/", "query": "page=2",
            "page_id": None, "title": "Drain cleaning"}

    def single(count):
        for _ in range(count):
            writes.insert_page_view(session.pk, view)

    def batched(k):
        # The multi-row form of the same guarded INSERT: k rows, one statement, one commit.
        qn = connection.ops.quote_name
        fields = [PageView._meta.get_field(n) for n in ("session_id", "viewed_at", "path", "query", "page_id", "title")]
        cast = connection.vendor == "postgresql"
        row = "(" + ", ".join(f"CAST(%s AS {f.db_type(connection)})" if cast else "%s" for f in fields) + ")"
        async_commit = " WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL" if cast else ""
        columns = ", ".join(qn(f.column) for f in fields)
        sql = (f"INSERT INTO {qn(PageView._meta.db_table)} ({columns}) "  # noqa: S608
               f"SELECT * FROM (VALUES {', '.join([row] * k)}) AS v ({columns}){async_commit}")
        values = [f.get_db_prep_save(view.get(f.attname, session.pk), connection) for f in fields]

        def run(count):
            with connection.cursor() as cursor:
                for _ in range(count // k):
                    cursor.execute(sql, values * k)

        return run

    variants = {"1 (today)": single}
    for k in (2, 5, 10, 25):
        variants[f"{k}"] = batched(k)
    for run in variants.values():
        run(50)
    per_view = {name: [] for name in variants}
    for round_ in range(args.rounds):
        names = list(variants)
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            start = time.perf_counter()
            variants[name](args.rows)
            per_view[name].append((time.perf_counter() - start) / args.rows)

    print(f"Batching page-view INSERTs — database: {engine}, {args.rounds} interleaved rounds × "
          f"{args.rows} page views per variant; at {args.rate} page views/s:")
    print(f"  {'rows per INSERT':16} {'per page view':>14} {'DB time per second':>19} {'saved vs today':>15}")
    today = median(per_view["1 (today)"])
    for name, samples in per_view.items():
        cost = median(samples)
        print(f"  {name:16} {cost * 1e6:11.1f} µs {cost * args.rate * 1000:15.1f} ms/s "
              f"{(today - cost) * args.rate * 1000:12.1f} ms/s")
    PageView.objects.filter(session=session).delete()
    session.visitor.delete()


if __name__ == "__main__":
    main()

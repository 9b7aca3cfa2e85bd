"""Child process of the leasing concurrency test and benchmark: real separate processes with
their own database connections (no Django import at module level: the child sets up Django
against the database named by the parent, e.g. the pytest test database)."""

import os
import random
import time


def setup_django(database_name: str, settings_module: str = "tests.settings", options=None) -> None:
    """Point this process at ``database_name`` (with ``options``, the database OPTIONS, when
    given): a spawned child sets Django up; a forked one inherits it and only needs fresh
    connections (never the parent's sockets)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    from django.apps import apps
    from django.conf import settings

    if apps.ready:
        from django.db import connections

        for conn in connections.all(initialized_only=True):
            conn.connection = None  # inherited socket belongs to the parent: never touch it
        connections["default"].settings_dict["NAME"] = database_name
        if options is not None:
            connections["default"].settings_dict["OPTIONS"] = options
        return
    settings.DATABASES["default"]["NAME"] = database_name
    if options is not None:
        settings.DATABASES["default"]["OPTIONS"] = options
    settings.DATABASES["default"]["CONN_MAX_AGE"] = None
    import django

    django.setup()


def lease_for_new_visitors(database_name, pool_fields, session_ids, barrier, results, *, revisit_every=0,
                           worker=0, seed=0, database_options=None):
    """Ask the pool for the number of each of ``session_ids`` (new sessions, created by the
    parent), like the template tag does on a first page view. With ``revisit_every``, every
    n-th iteration also shows a page to one of this worker's earlier visitors (refresh,
    revive and reclaim paths). ``pool_fields``: the pool's ``PoolConfig`` as a dict
    (unpickling the dataclass would import models before Django is set up). Puts a summary
    dict on ``results``."""
    setup_django(database_name, options=database_options)
    from django.db import connection

    from wagtail_calltracking.numbers.leasing import number_for_session
    from wagtail_calltracking.numbers.rules import PoolConfig

    rng = random.Random(seed * 1000 + worker)
    config = PoolConfig(**pool_fields)
    summary = {"dynamic": 0, "overflow": 0, "reclaimed": 0, "errors": 0, "revisits": 0, "seconds": 0.0}
    connection.ensure_connection()
    barrier.wait(timeout=120)
    started = time.perf_counter()
    for index, session_id in enumerate(session_ids):
        try:
            result = number_for_session(config, session_id, new_session=True)
            summary["dynamic" if result.is_dynamic else "overflow"] += 1
            summary["reclaimed"] += bool(result.reclaimed)
            if revisit_every and index % revisit_every == 0 and index:
                again = number_for_session(config, rng.choice(session_ids[:index]))
                summary["revisits"] += 1
                summary["reclaimed"] += bool(again and again.reclaimed)
        except Exception as error:  # reported to the parent, which fails the test
            summary["errors"] += 1
            summary.setdefault("messages", []).append(repr(error))
    summary["seconds"] = time.perf_counter() - started
    connection.close()
    results.put(summary)


def create_sessions(count, using="default"):
    """``count`` new visitors with one session each, in bulk (ids in creation order)."""
    from wagtail_calltracking.models import Visitor, VisitorSession

    visitors = Visitor.objects.using(using).bulk_create([Visitor() for _ in range(count)])
    sessions = VisitorSession.objects.using(using).bulk_create(
        [VisitorSession(visitor=visitor, channel="paid_search") for visitor in visitors]
    )
    return [session.pk for session in sessions]


def run_workers(database_name, pool_fields, processes, visitors, *, start_method=None, using="default",
                **kwargs):
    """Start ``processes`` worker processes together, each leasing for ``visitors`` new
    sessions; return their summaries. Forked where possible (fast start; the parent's
    connection is closed first so no socket is shared), spawned elsewhere."""
    import multiprocessing

    from django.db import connections

    session_ids = create_sessions(processes * visitors, using=using)
    if start_method is None:
        start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if start_method == "fork":
        connections.close_all()
    context = multiprocessing.get_context(start_method)
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(
            target=lease_for_new_visitors,
            args=(database_name, pool_fields, session_ids[index::processes], barrier, results),
            kwargs={**kwargs, "worker": index},
        )
        for index in range(processes)
    ]
    for process in workers:
        process.start()
    summaries = [results.get(timeout=300) for _ in workers]
    for process in workers:
        process.join(timeout=60)
    return summaries


def migrate_database(database_name, options=None):
    """Child process: migrate ``database_name`` as this process's default database (some
    third-party data migrations and post-migrate handlers ignore a non-default alias)."""
    setup_django(database_name, options=options)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    connection.close()


def migrate_in_child(database_name, options=None):
    import multiprocessing

    start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    process = multiprocessing.get_context(start_method).Process(
        target=migrate_database, args=(database_name, options)
    )
    process.start()
    process.join(timeout=600)
    if process.exitcode != 0:
        raise RuntimeError(f"migrating {database_name} failed (exit code {process.exitcode})")

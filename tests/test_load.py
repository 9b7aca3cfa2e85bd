"""The load and fault run (``bench/load.py``) with CI-sized numbers: the example site under
gunicorn with 4 workers on PostgreSQL, concurrent new visitors reading their numbers and
calling them through the demo provider, a worker SIGKILLed and PostgreSQL restarted mid-run.

Excluded from the default run (marker ``load``); ``.ci/run`` runs it with
``DATABASE_URL=postgres://… pytest -m load``. It creates and drops its own database
(``ct_load_<pid>``) and restarts this machine's PostgreSQL once (a few seconds)."""

import os
import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.load


@pytest.fixture(scope="module")
def load_bench():
    sys.path.insert(0, str(BENCH))
    try:
        import load
    finally:
        sys.path.remove(str(BENCH))
    return load


def test_load_and_faults(load_bench):
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        pytest.skip("the load run needs PostgreSQL: DATABASE_URL=postgres://…")
    config = load_bench.LoadConfig(
        visitors=int(os.environ.get("CALLTRACKING_LOAD_VISITORS", 120)),
        concurrency=int(os.environ.get("CALLTRACKING_LOAD_CONCURRENCY", 40)),
        fault_visitors=int(os.environ.get("CALLTRACKING_LOAD_VISITORS", 120)),
        after_visitors=30,
        restart_database=shutil.which("pg_ctlcluster") is not None,
        database_url=database_url,
    )
    report = load_bench.run(config)
    print("\n" + report.text())

    steady, faults, after = report.phase("steady"), report.phase("faults"), report.phase("after faults")
    # Under load: no server error, no dropped connection.
    assert steady.server_errors == 0 and steady.connection_errors == 0
    assert after.server_errors == 0 and after.connection_errors == 0
    # During the faults, 5xx only while the database is down (pages need it; the status
    # webhook asks the provider to retry with 503).
    assert report.killed_worker
    assert faults.server_errors_outside(report.outage_window) == 0
    # No call lost, every call attributed to the session of the visitor who saw the number.
    assert report.calls_sent >= config.visitors + config.after_visitors
    assert report.calls_lost == []
    assert report.calls_stored == report.calls_sent
    assert report.calls_undelivered == 0
    assert report.attribution_checked == report.calls_sent
    assert report.attribution_correct == report.attribution_checked, report.attribution_errors[:5]
    # One number, one visitor at a time: before, during and after the faults.
    assert report.double_leases == []
    assert report.numbers_shown_twice == []
    assert report.numbers_changed == 0
    # The tag's fail-safe (canonical number when the database drops mid-request) only while
    # the faults are injected.
    assert all(visit.canonical_fallbacks == 0 for visit in report.visits if visit.phase != "faults")

"""Load and fault run: the example site under gunicorn (4 workers) on PostgreSQL, a bounded
load generator on the loopback interface, and the figures that matter for call tracking.

What it does, on a dedicated database ``ct_load_<pid>`` (created, migrated, dropped):

1. **Steady load** — ``--visitors`` new visitors (``--concurrency`` at a time), each with a
   browser User-Agent, land on the site from a Google Ads click (a unique ``gclid``), view
   three pages and read their tracking number from the HTML; then they call it: the demo
   telephony provider's voice and status webhooks report the call (retried on errors and 5xx,
   as real providers do).
2. **Faults** — ``--fault-visitors`` more visitors while a gunicorn worker is SIGKILLed and
   PostgreSQL is restarted mid-run. Voice webhooks that arrive while the database is down are
   answered from the fail-open path and spooled; ``calltracking_replay_webhooks --spool``
   imports them afterwards (as the operator's cron would).
3. **After the faults** — ``--after-visitors`` more, to show the site is healthy again.

Reported: throughput, p50/p99 latency, 5xx and connection errors per phase; calls stored vs
sent; attribution correctness against the generator's ground truth (the call's session is
the session of the visitor who saw the number — from their cookie — and carries their gclid);
double leases (intervals of one number's leases overlapping, in the database) and numbers
shown to two visitors (seen by the generator). Goals: 0 lost calls, 0 double leases, 0 5xx
outside the database outage, 100 % correct attribution.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/load.py
    .venv/bin/python bench/load.py --visitors 300 --concurrency 300 --no-faults

Only loopback traffic; everything started here is stopped here (by process id).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
NUMBER_LINK = re.compile(r'<a href="tel:(\+\d+)"[^>]*class="calltracking-number')
PAGES = ("/drain-cleaning/", "/contact/")
CANONICAL = "+12125550100"
FALLBACK_FORWARD = "+12125550199"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"


@dataclass
class LoadConfig:
    visitors: int = 300
    concurrency: int = 300
    fault_visitors: int = 300
    after_visitors: int = 60
    faults: bool = True
    restart_database: bool = True
    workers: int = 4
    threads: int = 4
    pool_size: int | None = None  # default: every visitor can hold a number of their own
    database_url: str = ""
    keep_database: bool = False
    verbose: bool = False

    @property
    def total_visitors(self) -> int:
        return self.visitors + (self.fault_visitors if self.faults else 0) + self.after_visitors


# --- measurements --------------------------------------------------------------------------------


@dataclass
class Visit:
    """What the generator knows (its ground truth) about one visitor."""

    index: int
    phase: str
    gclid: str
    call_id: str
    caller: str
    number: str = ""
    session_id: int | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    number_changed: bool = False
    #: Pages that showed the canonical number instead (the tag's fail-safe when the database
    #: dropped mid-request).
    canonical_fallbacks: int = 0
    failed: str = ""
    call_sent: bool = False
    call_answered_fail_open: bool = False
    webhook_attempts: int = 0


@dataclass
class Phase:
    name: str
    started: float = 0.0
    ended: float = 0.0
    latencies: dict = field(default_factory=lambda: {"page": [], "webhook": []})
    statuses: dict = field(default_factory=dict)
    server_errors: int = 0
    connection_errors: int = 0
    webhook_retries: int = 0
    #: (monotonic time, kind, status) of every 5xx and connection error.
    errors: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, status: int | None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            key = str(status) if status is not None else "connection error"
            self.statuses[key] = self.statuses.get(key, 0) + 1
            if status is None:
                self.connection_errors += 1
            elif status >= 500:
                self.server_errors += 1
            if status is None or status >= 500:
                self.errors.append((time.monotonic(), kind, status))

    def server_errors_outside(self, window: tuple[float, float] | None) -> int:
        """5xx answered outside ``window`` (the database outage)."""
        return sum(
            1
            for moment, _kind, status in self.errors
            if status is not None and (window is None or not window[0] <= moment <= window[1])
        )

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def duration(self) -> float:
        return max(self.ended - self.started, 1e-9)

    def percentile(self, q: float, kind: str | None = None) -> float:
        values = sorted(self.latencies[kind] if kind else self.latencies["page"] + self.latencies["webhook"])
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


@dataclass
class Report:
    config: LoadConfig
    phases: list[Phase] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    calls_sent: int = 0
    calls_stored: int = 0
    calls_lost: list[str] = field(default_factory=list)
    calls_undelivered: int = 0
    attribution_checked: int = 0
    attribution_correct: int = 0
    attribution_errors: list[str] = field(default_factory=list)
    double_leases: list[str] = field(default_factory=list)
    numbers_shown_twice: list[str] = field(default_factory=list)
    numbers_changed: int = 0
    canonical_fallbacks: int = 0
    killed_worker: int | None = None
    database_outage_seconds: float | None = None
    #: Monotonic (start, end) of the database outage, with a second of margin after it for
    #: requests that were already failing when it came back.
    outage_window: tuple[float, float] | None = None
    stuck_events_replayed: int = 0
    fail_open_answers: int = 0
    spool_files: int = 0
    replay_output: str = ""
    leases: int = 0

    def failed_visitors(self, phase: str) -> int:
        return sum(1 for visit in self.visits if visit.phase == phase and visit.failed)

    def phase(self, name: str) -> Phase:
        return next(phase for phase in self.phases if phase.name == name)

    def text(self) -> str:
        lines = [
            f"Load/fault run: {self.config.workers} gunicorn workers × {self.config.threads} threads, PostgreSQL, "
            f"{self.config.total_visitors} visitors ({self.config.concurrency} concurrent), pool of "
            f"{self.config.pool_size} numbers",
        ]
        for phase in self.phases:
            lines.append(
                f"  [{phase.name}] {phase.requests} requests in {phase.duration:.1f}s = "
                f"{phase.requests / phase.duration:.1f} req/s; latency p50 {phase.percentile(0.5) * 1000:.0f} ms, "
                f"p99 {phase.percentile(0.99) * 1000:.0f} ms (pages p99 {phase.percentile(0.99, 'page') * 1000:.0f} ms, "
                f"webhooks p99 {phase.percentile(0.99, 'webhook') * 1000:.0f} ms); 5xx: {phase.server_errors}"
                + (
                    f" (outside the database outage: {phase.server_errors_outside(self.outage_window)})"
                    if phase.name == "faults" and self.outage_window
                    else ""
                )
                + f"; connection errors: {phase.connection_errors}; webhook retries: {phase.webhook_retries}; "
                f"visitors who could not load a page: {self.failed_visitors(phase.name)}"
            )
        if self.killed_worker:
            lines.append(f"  fault: SIGKILLed gunicorn worker {self.killed_worker} mid-run")
        if self.database_outage_seconds is not None:
            lines.append(f"  fault: PostgreSQL restarted mid-run (down {self.database_outage_seconds:.1f}s)")
        lines += [
            f"  calls sent {self.calls_sent}, stored {self.calls_stored}, lost {len(self.calls_lost)}, "
            f"undelivered after retries {self.calls_undelivered}",
            f"  voice webhooks answered fail-open (database down) {self.fail_open_answers}; "
            f"spool files imported {self.spool_files}; events replayed {self.stuck_events_replayed}",
            f"  attribution correct {self.attribution_correct}/{self.attribution_checked} "
            f"(session = the visitor's session, gclid = the visitor's, confidence exact)",
            f"  double leases in the database: {len(self.double_leases)} (over {self.leases} leases); "
            f"numbers shown to two visitors: {len(self.numbers_shown_twice)}; "
            f"visitors whose number changed between pages: {self.numbers_changed}; pages that fell back to the "
            f"canonical number (tag fail-safe, database gone mid-request): {self.canonical_fallbacks}",
        ]
        for problem in (self.calls_lost + self.attribution_errors + self.double_leases + self.numbers_shown_twice)[:20]:
            lines.append(f"    ! {problem}")
        return "\n".join(lines)


# --- infrastructure ------------------------------------------------------------------------------


def database_urls(base: str, name: str) -> tuple[str, str]:
    """(maintenance database URL, load database URL) on the server of ``base``."""
    parts = urlsplit(base)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit("The load run needs PostgreSQL: DATABASE_URL=postgres://user@host:5432/db")
    admin = urlunsplit(parts._replace(path="/postgres"))
    return admin, urlunsplit(parts._replace(path="/" + name))


def _psycopg_dsn(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


@contextlib.contextmanager
def load_database(base_url: str, keep: bool = False):
    import psycopg

    name = f"ct_load_{os.getpid()}"
    admin_url, url = database_urls(base_url, name)
    with psycopg.connect(_psycopg_dsn(admin_url), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        if not keep:
            _wait_for_postgres(url, 60)
            with psycopg.connect(_psycopg_dsn(admin_url), autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_ready(url: str) -> bool:
    parts = urlsplit(url)
    result = subprocess.run(
        ["pg_isready", "-q", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)],
        check=False,
    )
    return result.returncode == 0


def _wait_for_postgres(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _postgres_ready(url):
            return True
        time.sleep(0.1)
    return False


def _cluster() -> tuple[str, str] | None:
    """This machine's PostgreSQL cluster (version, name), if pg_ctlcluster manages it."""
    if not shutil.which("pg_ctlcluster"):
        return None
    versions = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").exists() else []
    if not versions:
        return None
    return versions[-1].parent.name, "main"


def restart_postgres(url: str) -> float:
    """Restart this machine's PostgreSQL (fast shutdown) and wait until it accepts
    connections again; returns how long it was unavailable."""
    cluster = _cluster()
    if cluster is None:
        raise RuntimeError("pg_ctlcluster not available: cannot restart PostgreSQL")
    started = time.monotonic()
    try:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", cluster[0], cluster[1], "restart"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    finally:
        ensure_postgres_running(url)
    return time.monotonic() - started


def ensure_postgres_running(url: str) -> None:
    if _wait_for_postgres(url, 15):
        return
    cluster = _cluster()
    if cluster is not None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", cluster[0], cluster[1], "start"],
            check=False,
            capture_output=True,
            timeout=60,
        )
    if not _wait_for_postgres(url, 30):
        raise RuntimeError("PostgreSQL did not come back")


def free_port(start: int = 8100) -> int:
    for port in range(start, start + 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


class Site:
    """The example site under gunicorn, on the load database."""

    def __init__(self, config: LoadConfig, database_url: str, workdir: Path):
        self.config = config
        self.workdir = workdir
        self.spool_dir = workdir / "spool"
        self.spool_dir.mkdir()
        self.log_path = workdir / "gunicorn.log"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "load_settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT / "example_site"), str(ROOT)]),
            "CALLTRACKING_LOAD_SPOOL_DIR": str(self.spool_dir),
            "CALLTRACKING_DEMO_PROVIDER": "1",
        }
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [PYTHON, str(ROOT / "example_site" / "manage.py"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr

    def prepare(self, pool_size: int) -> None:
        self.manage("migrate", "--noinput")
        result = subprocess.run(
            [PYTHON, __file__, "--prepare-site", str(pool_size)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"site preparation failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        gunicorn = str(Path(PYTHON).with_name("gunicorn"))
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [
                gunicorn,
                "example_site.wsgi:application",
                "--workers", str(self.config.workers),
                "--threads", str(self.config.threads),
                "--bind", f"127.0.0.1:{self.port}",
                "--backlog", "2048",
                "--timeout", "60",
                "--graceful-timeout", "5",
            ],
            cwd=str(ROOT / "example_site"),
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + self.log_path.read_text())
            with contextlib.suppress(requests.RequestException):
                probe = requests.get(self.base + "/", headers={"User-Agent": "load-probe-bot"}, timeout=5)
                if probe.ok and len(self.workers()) >= self.config.workers:
                    return
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not start:\n" + self.log_path.read_text())

    def workers(self) -> list[int]:
        if self.process is None:
            return []
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in children]

    def kill_a_worker(self) -> int | None:
        workers = self.workers()
        if not workers:
            return None
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the master stops its own workers
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # our own process group only
                self.process.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()


def prepare_site(pool_size: int) -> None:
    """Inside Django (load settings): demo pages, site settings and a pool serving everyone."""
    import io

    import django

    django.setup()
    from home.demo import pages
    from wagtail.models import Site as WagtailSite

    from wagtail_calltracking.models import CallTrackingSiteSettings, NumberPool, PoolAudience, TrackingNumber
    from wagtail_calltracking.numbers.phone import to_e164

    pages.load(io.StringIO())
    site = WagtailSite.objects.get(is_default_site=True)
    CallTrackingSiteSettings.objects.update_or_create(
        site=site, defaults={"canonical_number": CANONICAL, "fallback_forward_to": FALLBACK_FORWARD}
    )
    pool = NumberPool.objects.create(
        site=site, name="Website visitors", audience=PoolAudience.ALL, hold_minutes=20, cooldown_minutes=10
    )
    numbers, candidate = [], 0
    while len(numbers) < pool_size:
        e164 = to_e164(f"+1212{3000000 + candidate:07d}")
        candidate += 1
        if e164:
            numbers.append(TrackingNumber(number=e164, pool=pool, site=site, provider="demo", label="load"))
    TrackingNumber.objects.bulk_create(numbers)


# --- the generator -------------------------------------------------------------------------------


class Generator:
    def __init__(self, base: str, report: Report, run_id: str):
        import requests

        self.requests = requests
        self.base = base
        self.report = report
        self.run_id = run_id

    def visit(self, visit: Visit, phase: Phase) -> Visit:
        session = self.requests.Session()
        session.headers["User-Agent"] = BROWSER_UA
        landing = f"/?utm_source=google&utm_medium=cpc&utm_campaign=load&utm_term=plumber&gclid={visit.gclid}"
        for path in (landing, *PAGES):
            html, status = self.page(session, path, phase)
            if html is None:
                visit.failed = f"{path}: {status}"
                return visit
            number = _shown_number(html)
            now = time.monotonic()
            if not number:
                visit.failed = f"{path}: no tracking number"
                return visit
            if number == CANONICAL:
                visit.canonical_fallbacks += 1
                if not visit.number:
                    visit.failed = f"{path}: canonical number shown"
                    return visit
                continue
            if not visit.number:
                visit.number, visit.first_seen = number, now
                visit.session_id = _session_from_cookie(session.cookies.get("ct_visitor", ""))
            elif number != visit.number:
                visit.number_changed = True
            visit.last_seen = now
        self.call(visit, phase)
        return visit

    def page(self, session, path: str, phase: Phase):
        started = time.perf_counter()
        try:
            response = session.get(self.base + path, timeout=60)
        except self.requests.RequestException as error:
            phase.record("page", time.perf_counter() - started, None)
            return None, type(error).__name__
        phase.record("page", time.perf_counter() - started, response.status_code)
        if response.status_code != 200:
            return None, response.status_code
        return response.text, 200

    def webhook(self, endpoint: str, document: dict, visit: Visit, phase: Phase):
        """POST like a telephony provider: retried on connection errors and 5xx with backoff
        (providers retry for minutes; 90 seconds here)."""
        body = json.dumps(document)
        deadline = time.monotonic() + 90
        attempt = 0
        while True:
            attempt += 1
            visit.webhook_attempts += 1
            started = time.perf_counter()
            try:
                response = self.requests.post(
                    f"{self.base}/calltracking/webhooks/demo/{endpoint}/",
                    data=body,
                    headers={"Content-Type": "application/json", "User-Agent": "TwilioProxy/1.1"},
                    timeout=30,
                )
                status = response.status_code
            except self.requests.RequestException:
                response, status = None, None
            phase.record("webhook", time.perf_counter() - started, status)
            if status is not None and status < 500:
                return response
            if time.monotonic() > deadline:
                return None
            with phase.lock:
                phase.webhook_retries += 1
            time.sleep(min(0.2 * 2 ** min(attempt, 4), 2.0))

    def call(self, visit: Visit, phase: Phase) -> None:
        moment = datetime.now(UTC)
        voice = self.webhook(
            "voice",
            {"call_id": visit.call_id, "from": visit.caller, "to": visit.number, "timestamp": moment.isoformat()},
            visit,
            phase,
        )
        if voice is None or voice.status_code != 200:
            return
        visit.call_sent = True
        with contextlib.suppress(ValueError):
            visit.call_answered_fail_open = bool(voice.json().get("fallback"))
        self.webhook(
            "status",
            {
                "event": "completed",
                "call_id": visit.call_id,
                "result": "answered",
                "talk_seconds": 30 + visit.index % 200,
                "timestamp": (moment + timedelta(seconds=40)).isoformat(),
                "event_id": f"{visit.call_id}-done",
            },
            visit,
            phase,
        )


def _shown_number(html: str) -> str | None:
    match = NUMBER_LINK.search(html)
    return match.group(1) if match else None


def _session_from_cookie(value: str) -> int | None:
    parts = value.strip('"').split("|")
    return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None


def run_phase(generator: Generator, report: Report, name: str, count: int, concurrency: int,
              first_index: int, faults=None) -> Phase:
    phase = Phase(name)
    report.phases.append(phase)
    visits = [
        Visit(
            index=index,
            phase=name,
            gclid=f"LOAD-{generator.run_id}-{index}",
            call_id=f"load-{generator.run_id}-{index}",
            caller=f"+1646{2000000 + index:07d}",
        )
        for index in range(first_index, first_index + count)
    ]
    done = threading.Event()
    progress = {"finished": 0}
    fault_thread = None
    if faults is not None:
        fault_thread = threading.Thread(target=faults, args=(progress, count, done), daemon=True)
    phase.started = time.monotonic()
    if fault_thread:
        fault_thread.start()
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(generator.visit, visit, phase) for visit in visits]
        for future in concurrent.futures.as_completed(futures):
            future.result()
            progress["finished"] += 1
    phase.ended = time.monotonic()
    done.set()
    if fault_thread:
        fault_thread.join(timeout=120)
    report.visits.extend(visits)
    return phase


# --- verification --------------------------------------------------------------------------------


def verify(report: Report, database_url: str) -> None:
    import psycopg

    with psycopg.connect(_psycopg_dsn(database_url)) as connection:
        calls = {
            row[0]: row
            for row in connection.execute(
                "SELECT c.provider_call_id, c.session_id, c.gclid, c.confidence, c.to_number, s.gclid "
                "FROM wagtail_calltracking_call c LEFT JOIN wagtail_calltracking_visitorsession s "
                "ON s.id = c.session_id WHERE c.provider = 'demo'"
            )
        }
        leases = connection.execute(
            "SELECT l.number_id, n.number, l.id, l.leased_at, l.last_seen_at, l.released_at, "
            "COALESCE(p.hold_minutes, 20) FROM wagtail_calltracking_lease l "
            "JOIN wagtail_calltracking_trackingnumber n ON n.id = l.number_id "
            "LEFT JOIN wagtail_calltracking_numberpool p ON p.id = l.pool_id "
            "ORDER BY l.number_id, l.leased_at, l.id"
        ).fetchall()
        current = dict(
            connection.execute(
                "SELECT n.id, n.current_lease_id FROM wagtail_calltracking_trackingnumber n"
            ).fetchall()
        )

    sent = [visit for visit in report.visits if visit.call_sent]
    report.calls_sent = len(sent)
    report.calls_stored = sum(1 for visit in sent if visit.call_id in calls)
    report.calls_lost = [f"call {visit.call_id} ({visit.phase}) sent but not stored" for visit in sent
                         if visit.call_id not in calls]
    report.calls_undelivered = sum(
        1 for visit in report.visits if visit.number and not visit.failed and not visit.call_sent
    )
    for visit in sent:
        row = calls.get(visit.call_id)
        if row is None:
            continue
        report.attribution_checked += 1
        _, session_id, gclid, confidence, to_number, session_gclid = row
        if (session_id, gclid, confidence, to_number) == (visit.session_id, visit.gclid, "exact", visit.number) and (
            session_gclid == visit.gclid
        ):
            report.attribution_correct += 1
        else:
            report.attribution_errors.append(
                f"call {visit.call_id}: session {session_id} (visitor's {visit.session_id}), gclid {gclid!r} "
                f"(visitor's {visit.gclid!r}), confidence {confidence}, to {to_number} (shown {visit.number})"
            )

    # Double leases: one number's lease intervals [leased_at, end) must never overlap.
    report.leases = len(leases)
    previous = None
    for number_id, number, lease_id, leased_at, last_seen, released_at, hold in leases:
        end = released_at or last_seen + timedelta(minutes=hold)
        if previous is not None and previous[0] == number_id and leased_at < previous[2]:
            report.double_leases.append(
                f"{number}: lease {lease_id} starts {leased_at:%H:%M:%S.%f} before lease {previous[1]} ends "
                f"{previous[2]:%H:%M:%S.%f}"
            )
        previous = (number_id, lease_id, end)
    latest = {}
    for number_id, _number, lease_id, *_rest in leases:
        latest[number_id] = lease_id
    for number_id, lease_id in latest.items():
        if current.get(number_id) not in (lease_id, None):
            report.double_leases.append(f"number {number_id}: current lease {current[number_id]} is not its latest")

    # Seen by the generator: a number shown to two visitors whose display windows overlap
    # within the hold time (the pool is large enough that no number is ever reused here).
    by_number: dict[str, list[Visit]] = {}
    for visit in report.visits:
        if visit.number:
            by_number.setdefault(visit.number, []).append(visit)
    for number, visits in by_number.items():
        if len(visits) > 1:
            report.numbers_shown_twice.append(
                f"{number} shown to visitors {', '.join(str(v.index) for v in visits)}"
            )
    report.numbers_changed = sum(1 for visit in report.visits if visit.number_changed)
    report.canonical_fallbacks = sum(visit.canonical_fallbacks for visit in report.visits)
    report.fail_open_answers = sum(1 for visit in report.visits if visit.call_answered_fail_open)


# --- the run -------------------------------------------------------------------------------------


def run(config: LoadConfig) -> Report:
    config.database_url = config.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if config.pool_size is None:
        config.pool_size = config.total_visitors + 20
    report = Report(config)
    run_id = f"{os.getpid()}{int(time.time()) % 10000}"
    workdir = Path(tempfile.mkdtemp(prefix="ct-load-"))
    try:
        with load_database(config.database_url, keep=config.keep_database) as url:
            site = Site(config, url, workdir)
            site.prepare(config.pool_size)
            site.start()
            try:
                generator = Generator(site.base, report, run_id)
                run_phase(generator, report, "steady", config.visitors, config.concurrency, 0)
                if config.faults:
                    run_phase(
                        generator,
                        report,
                        "faults",
                        config.fault_visitors,
                        config.concurrency,
                        config.visitors,
                        faults=_fault_plan(site, report, url, config),
                    )
                    # What the operator's cron does after an outage: import the spool, replay
                    # failed events.
                    # Once nothing is in flight any more, an event still "received" was cut off
                    # by the fault: --stuck-minutes 0 replays it now (cron uses the default).
                    report.spool_files = len(list(site.spool_dir.glob("*.json")))
                    report.replay_output = site.manage(
                        "calltracking_replay_webhooks", "--spool", str(site.spool_dir), "--stuck-minutes", "0"
                    )
                    report.stuck_events_replayed = len(re.findall(r"^#\d+ ", report.replay_output, re.M))
                run_phase(
                    generator,
                    report,
                    "after faults" if config.faults else "more visitors",
                    config.after_visitors,
                    config.concurrency,
                    config.visitors + (config.fault_visitors if config.faults else 0),
                )
            finally:
                site.stop()
                if config.verbose:
                    print(site.log_path.read_text()[-5000:])
            ensure_postgres_running(url)
            verify(report, url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def _fault_plan(site: Site, report: Report, url: str, config: LoadConfig):
    def inject(progress, total, done):
        # A worker dies a quarter of the way in, the database restarts halfway.
        while progress["finished"] < total * 0.25 and not done.is_set():
            time.sleep(0.02)
        report.killed_worker = site.kill_a_worker()
        if not config.restart_database:
            return
        while progress["finished"] < total * 0.5 and not done.is_set():
            time.sleep(0.02)
        started = time.monotonic()
        report.database_outage_seconds = restart_postgres(url)
        report.outage_window = (started, time.monotonic() + 1.0)

    return inject


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--fault-visitors", type=int, default=300)
    parser.add_argument("--after-visitors", type=int, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pool-size", type=int, default=None)
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--no-database-restart", action="store_true")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--prepare-site", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare_site is not None:
        prepare_site(args.prepare_site)
        return 0
    config = LoadConfig(
        visitors=args.visitors,
        concurrency=args.concurrency,
        fault_visitors=args.fault_visitors,
        after_visitors=args.after_visitors,
        faults=not args.no_faults,
        restart_database=not args.no_database_restart,
        workers=args.workers,
        threads=args.threads,
        pool_size=args.pool_size,
        keep_database=args.keep_database,
        verbose=args.verbose,
    )
    report = run(config)
    print(report.text())
    ok = (
        not report.calls_lost
        and not report.double_leases
        and not report.numbers_shown_twice
        and report.attribution_correct == report.attribution_checked
        and all(phase.server_errors_outside(report.outage_window) == 0 for phase in report.phases)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

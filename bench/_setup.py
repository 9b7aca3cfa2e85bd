"""Shared set-up for the benchmarks: the example site on a throw-away database.

SQLite by default (a temporary file); DATABASE_URL=postgres://… uses PostgreSQL (the named
database is used as is: point it at a scratch database).
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(settings_module="example_site.settings"):
    sys.path[:0] = [str(ROOT), str(ROOT / "example_site")]
    if not os.environ.get("DATABASE_URL"):
        path = Path(tempfile.mkdtemp(prefix="ct-bench-")) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "*")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return os.environ["DATABASE_URL"].split(":", 1)[0]


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

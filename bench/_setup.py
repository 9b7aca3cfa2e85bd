"""Shared set-up for the benchmarks: the example site on a throw-away database.

SQLite by default (a temporary file); DATABASE_URL=postgres://… uses PostgreSQL (the named
database is used as is: point it at a scratch database).
"""

import os
import sys
import tempfile
import time
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


class WSGIDriver:
    """Serves requests through Django's WSGI handler the way a WSGI server does — call the
    application, send the body, then ``close()`` the response — and times both points:

    * *time to response*: the body is in the server's hands (what the visitor waits for);
    * *total*: after ``close()``, i.e. including work deferred to the end of the response.

    Cookies set by a response are sent back by the next request, like a browser. Database
    connections are kept open across requests (persistent connections or a pool in
    production), as Django's test client does.
    """

    def __init__(self, middleware=None, **headers):
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.signals import request_finished, request_started
        from django.db import close_old_connections
        from django.test import RequestFactory, override_settings

        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        if middleware is None:
            self.handler = WSGIHandler()
        else:
            with override_settings(MIDDLEWARE=middleware):
                self.handler = WSGIHandler()
        self.factory = RequestFactory(**headers)
        self.cookies = {}
        self.last_status = None

    def clear_cookies(self):
        self.cookies.clear()

    def environ(self, path):
        path, _, query = path.partition("?")
        environ = self.factory._base_environ(PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD="GET")
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return environ

    def _start_response(self, status, headers, exc_info=None):
        self.last_status = int(status.split(" ", 1)[0])
        for name, value in headers:
            if name.lower() == "set-cookie":
                pair = value.strip().split(";", 1)[0]
                key, _, cookie_value = pair.partition("=")
                if cookie_value in ("", '""'):
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = cookie_value

    def get(self, path="/"):
        """One request: (seconds to response, seconds in total)."""
        environ = self.environ(path)
        start = time.perf_counter()
        response = self.handler(environ, self._start_response)
        body = b"".join(response)
        handed = time.perf_counter()
        response.close()
        done = time.perf_counter()
        assert self.last_status in (200, 304) and body, (path, self.last_status)
        return handed - start, done - start

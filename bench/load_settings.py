"""Settings of the load/fault run (bench/load.py): the example site as a production
deployment would run it — DEBUG off, persistent database connections with health checks
(a restarted database costs no failed request once it is back), the demo telephony
provider on, and a webhook spool directory so that calls arriving while the database is
down are kept for ``calltracking_replay_webhooks --spool``."""

import os

from example_site.settings import *  # noqa: F403
from example_site.settings import DATABASES, WAGTAIL_CALLTRACKING

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES["default"]["CONN_MAX_AGE"] = 300
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

WAGTAIL_CALLTRACKING = {
    **WAGTAIL_CALLTRACKING,
    "DEMO_PROVIDER_ENABLED": True,
    "WEBHOOK_SPOOL_DIR": os.environ["CALLTRACKING_LOAD_SPOOL_DIR"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

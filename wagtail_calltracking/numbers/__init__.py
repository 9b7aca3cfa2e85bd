"""Tracking numbers: which number a visitor sees, and leasing pool numbers safely.

* ``phone`` — parsing, validation and formatting with ``phonenumbers``;
* ``rules`` — source matching (``match_source``, called by the middleware when a session
  starts) and the cached per-site number configuration;
* ``selection`` — the documented precedence applied to a request (used by the template tags
  and the cache-safe endpoint), memoised per request;
* ``leasing`` — atomic leases (``SKIP LOCKED`` on PostgreSQL, a write transaction on SQLite),
  lease semantics for attribution (``lease_end``, ``lease_at``, ``release_lease``);
* ``health`` — pool health (``pool_health(pool, days=30)``);
* ``checks`` / ``receivers`` — system checks and signal receivers (cache invalidation,
  releasing the leases of deactivated numbers and pools).

Nothing is imported here: the models import ``phone`` while the app registry is loading.
"""

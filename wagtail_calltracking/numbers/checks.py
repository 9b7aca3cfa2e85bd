"""System checks of the numbers area (ids ``wagtail_calltracking.W020``–``W039``/``E020``–).

Configuration lives in the database, so most of these read it. They run with every
``manage.py check``/``runserver``/``migrate`` and are skipped silently while the tables do
not exist yet (before the first migrate).
"""

from __future__ import annotations

import re

from django.core.checks import Error, Warning, register
from django.db import DatabaseError, connections, router, transaction

from ..conf import SETTINGS_NAME, ct_settings

_PARAMETER_NAME = re.compile(r"^[A-Za-z0-9_.~-]{1,40}$")


@register("wagtail_calltracking")
def check_number_settings(app_configs=None, **kwargs):
    errors = []
    name = ct_settings.LANDING_PARAMETER
    if not isinstance(name, str) or not _PARAMETER_NAME.match(name):
        errors.append(
            Error(
                f"{SETTINGS_NAME}['LANDING_PARAMETER'] is {name!r}.",
                hint="Use a short query parameter name such as 'ct' (letters, digits, _ . ~ -).",
                id="wagtail_calltracking.E020",
            )
        )
    refresh = ct_settings.LEASE_REFRESH_SECONDS
    if not (isinstance(refresh, int) and not isinstance(refresh, bool) and 1 <= refresh <= 110):
        errors.append(
            Error(
                f"{SETTINGS_NAME}['LEASE_REFRESH_SECONDS'] is {refresh!r}.",
                hint="Use a number of seconds between 1 and 110 (well below the 2-minute minimum hold time).",
                id="wagtail_calltracking.E021",
            )
        )
    if not isinstance(ct_settings.LEASE_SYNCHRONOUS_COMMIT, bool):
        errors.append(
            Error(
                f"{SETTINGS_NAME}['LEASE_SYNCHRONOUS_COMMIT'] is {ct_settings.LEASE_SYNCHRONOUS_COMMIT!r}.",
                hint="Use True or False.",
                id="wagtail_calltracking.E024",
            )
        )
    headroom = ct_settings.POOL_HEADROOM
    if not (isinstance(headroom, int | float) and not isinstance(headroom, bool) and 0 <= headroom <= 10):
        errors.append(
            Error(
                f"{SETTINGS_NAME}['POOL_HEADROOM'] is {headroom!r}.",
                hint="Use a fraction such as 0.25 (25 % spare numbers).",
                id="wagtail_calltracking.E022",
            )
        )
    return errors


def _database_ready(alias: str) -> bool:
    from ..models import NumberPool

    try:
        tables = connections[alias].introspection.table_names()
    except DatabaseError:
        return False
    return NumberPool._meta.db_table in tables


@register("wagtail_calltracking", "database")
def check_number_configuration(app_configs=None, databases=None, **kwargs):
    from ..models import NumberPool

    alias = router.db_for_read(NumberPool)
    if databases is not None and alias not in databases:
        return []
    if not _database_ready(alias):
        return []
    try:
        with transaction.atomic(using=alias):
            return list(_configuration_messages(alias))
    except DatabaseError:
        return []


def _configuration_messages(alias):
    from django.db.models import Count, Q

    from ..models import CallTrackingSiteSettings, NumberPool, PoolAudience, Source

    pools = (
        NumberPool.objects.using(alias)
        .filter(active=True)
        .annotate(active_numbers=Count("numbers", filter=Q(numbers__active=True)))
        .select_related("fallback_number")
    )
    for pool in pools:
        if pool.active_numbers == 0:
            yield Warning(
                f"The number pool “{pool}” has no active numbers: its visitors see the "
                "overflow or canonical number.",
                hint="Add numbers to the pool, or deactivate it.",
                obj=pool,
                id="wagtail_calltracking.W020",
            )
        fallback = pool.fallback_number
        if fallback is not None and (fallback.pool_id or not fallback.active):
            yield Warning(
                f"The overflow number of the pool “{pool}” is "
                + ("inside a pool." if fallback.pool_id else "inactive."),
                hint="Choose an active number outside every pool (or none: the canonical number).",
                obj=pool,
                id="wagtail_calltracking.W021",
            )
        if fallback is not None and Source.objects.using(alias).filter(static_number=fallback).exists():
            yield Warning(
                f"The overflow number of the pool “{pool}” is also the static number of a "
                "source: overflow calls would be attributed to that source.",
                hint="Use a dedicated overflow number.",
                obj=pool,
                id="wagtail_calltracking.W022",
            )
        if pool.hold_minutes * 60 <= int(ct_settings.LEASE_REFRESH_SECONDS):
            yield Warning(
                f"The hold time of the pool “{pool}” is shorter than LEASE_REFRESH_SECONDS.",
                hint="Use a hold time of a few minutes at least.",
                obj=pool,
                id="wagtail_calltracking.W023",
            )
        if pool.audience == PoolAudience.SOURCES and not pool.sources.filter(active=True).exists():
            yield Warning(
                f"The number pool “{pool}” serves only its sources, and no active source uses it.",
                hint="Point a source at this pool, or let it serve all (non-direct) visitors.",
                obj=pool,
                id="wagtail_calltracking.W024",
            )

    for source in Source.objects.using(alias).filter(active=True).select_related("static_number", "pool"):
        number, pool = source.static_number, source.pool
        if number is not None and number.pool_id:
            yield Error(
                f"The static number {number.number} of the source “{source}” is also in the "
                f"pool “{number.pool}”: visitors of both would share it.",
                hint="Remove the number from the pool, or give the source another number.",
                obj=source,
                id="wagtail_calltracking.E023",
            )
        if number is None and pool is None:
            yield Warning(
                f"The source “{source}” has neither a static number nor a pool.",
                hint="Choose one of them.",
                obj=source,
                id="wagtail_calltracking.W025",
            )
        elif number is not None and pool is not None:
            yield Warning(
                f"The source “{source}” has both a static number and a pool; the static number wins.",
                hint="Choose one of them.",
                obj=source,
                id="wagtail_calltracking.W026",
            )
        if number is not None and not number.active:
            yield Warning(
                f"The static number of the source “{source}” is inactive.",
                hint="Activate it or choose another number.",
                obj=source,
                id="wagtail_calltracking.W027",
            )
        if number is None and pool is not None and not pool.active:
            yield Warning(
                f"The source “{source}” uses the inactive pool “{pool}”.",
                hint="Activate the pool or choose another one.",
                obj=source,
                id="wagtail_calltracking.W028",
            )
        if not source.has_rules:
            yield Warning(
                f"The source “{source}” has no matching rule: it is used only where a template "
                f'forces it ({{% tracking_number source="{source.name}" %}}).',
                hint="Add a landing parameter, landing path, utm pattern, channel or referrer domain.",
                obj=source,
                id="wagtail_calltracking.W029",
            )

    audience_pools = NumberPool.objects.using(alias).filter(
        active=True, audience__in=(PoolAudience.ALL, PoolAudience.NON_DIRECT)
    )
    per_site = {}
    for pool in audience_pools:
        per_site.setdefault(pool.site_id, []).append(pool)
    for pools_of_site in per_site.values():
        if len(pools_of_site) > 1:
            names = ", ".join(f"“{p}”" for p in pools_of_site)
            yield Warning(
                f"Several pools serve all visitors of the same site ({names}); only the first "
                "by name is used.",
                hint="Keep one such pool per site; use sources for the others.",
                obj=pools_of_site[0],
                id="wagtail_calltracking.W030",
            )

    uses_numbers = Source.objects.using(alias).filter(active=True).exists() or pools.exists()
    if uses_numbers and not CallTrackingSiteSettings.objects.using(alias).exclude(canonical_number="").exists():
        yield Warning(
            "No site has a canonical number: pages show no number where no tracking number "
            "applies, and {% tracking_schema_org %} renders nothing.",
            hint="Set it in Settings › Call tracking.",
            id="wagtail_calltracking.W031",
        )

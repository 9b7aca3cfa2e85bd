"""System checks of the integrations (ids 060–079): the task backend that runs deliveries."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from ..conf import ct_settings

IMMEDIATE_BACKEND = "django_tasks.backends.immediate.ImmediateBackend"


@register(Tags.compatibility)
def check_delivery_backend(app_configs=None, **kwargs):
    from django_tasks.exceptions import InvalidTaskBackendError

    from ..compat import task_backends

    messages = []
    alias = ct_settings.TASK_BACKEND
    try:
        backend = task_backends[alias]
    except (InvalidTaskBackendError, KeyError, ImportError) as error:
        return [
            Error(
                f"WAGTAIL_CALLTRACKING['TASK_BACKEND'] names the task backend {alias!r}, which "
                f"cannot be loaded: {error}",
                hint="Use an alias defined in the TASKS setting (default: 'default').",
                id="wagtail_calltracking.E060",
            )
        ]
    queue = ct_settings.TASK_QUEUE_NAME
    if backend.queues and queue not in backend.queues:
        messages.append(
            Error(
                f"WAGTAIL_CALLTRACKING['TASK_QUEUE_NAME'] is {queue!r}, which the task backend "
                f"{alias!r} does not serve ({sorted(backend.queues)}).",
                hint="Add the queue to TASKS[alias]['QUEUES'] or choose one of its queues.",
                id="wagtail_calltracking.E061",
            )
        )
    backend_path = f"{type(backend).__module__}.{type(backend).__qualname__}"
    if backend_path == IMMEDIATE_BACKEND and not settings.DEBUG:
        messages.append(
            Warning(
                "Call-tracking deliveries (GA4, CRM webhooks) run on the immediate task backend: "
                "they are sent inside the telephony webhook request, and failed ones are retried "
                "only when `manage.py calltracking_deliveries` runs.",
                hint="In production use the database backend (pip install django-tasks-db; TASKS "
                "= {'default': {'BACKEND': 'django_tasks_db.DatabaseBackend'}}) and run "
                "`manage.py db_worker`; or run `calltracking_deliveries` from cron every minute.",
                id="wagtail_calltracking.W062",
            )
        )
    endpoint = str(ct_settings.GA4_ENDPOINT or "")
    if not endpoint.startswith(("https://", "http://")):
        messages.append(
            Error(
                f"WAGTAIL_CALLTRACKING['GA4_ENDPOINT'] must be an http(s) URL, not {endpoint!r}.",
                hint="Default: https://www.google-analytics.com (EU: https://region1.google-analytics.com).",
                id="wagtail_calltracking.E063",
            )
        )
    for name in ("DELIVERY_MAX_BACKOFF_SECONDS",):
        value = getattr(ct_settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            messages.append(
                Error(
                    f"WAGTAIL_CALLTRACKING['{name}'] must be a positive number, not {value!r}.",
                    id="wagtail_calltracking.E064",
                )
            )
    return messages

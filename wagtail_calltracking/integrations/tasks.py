"""Background tasks (django-tasks). The backend alias and queue come from the
``TASK_BACKEND`` / ``TASK_QUEUE_NAME`` settings at enqueue time (see ``delivery.enqueue``).

Production: the database backend of the ``django-tasks-db`` package and its worker
(``manage.py db_worker``); it also runs deferred retries. Tests and the demo: the immediate
backend, with ``manage.py calltracking_deliveries`` for retries.
"""

from django_tasks import task

from . import delivery


@task()
def deliver(delivery_id: int) -> str | None:
    """Send one delivery if it is still due. Returns the resulting status (or None)."""
    result = delivery.attempt(delivery_id)
    return result.status if result is not None else None


@task()
def process_due_deliveries(limit: int = 500) -> dict:
    """Send every due delivery (a periodic safety net for backends without a scheduler)."""
    return delivery.process_due(limit=limit)

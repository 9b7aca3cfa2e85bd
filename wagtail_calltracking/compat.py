"""Differences between the dependency versions we support (Wagtail 7.0 LTS pins django-tasks 0.7)."""

try:
    from django_tasks import task_backends
except ImportError:  # django-tasks < 0.8 named the backend registry `tasks`
    from django_tasks import tasks as task_backends

__all__ = ["task_backends"]

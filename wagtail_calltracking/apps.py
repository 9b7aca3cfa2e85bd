from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WagtailCallTrackingConfig(AppConfig):
    name = "wagtail_calltracking"
    label = "wagtail_calltracking"
    verbose_name = _("Call tracking")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, signal_handlers  # noqa: F401  (registers checks and receivers)

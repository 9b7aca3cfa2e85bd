"""A ModelViewSet for records the system writes and editors only read (calls, deliveries)."""

from django.contrib.auth.models import Permission
from django.urls import path
from wagtail.admin.viewsets.model import ModelViewSet


class ReadOnlyModelViewSet(ModelViewSet):
    """Listing and inspect views only: no add, edit, copy, delete, history or usage."""

    inspect_view_enabled = True
    copy_view_enabled = False
    add_to_reference_index = False
    search_backend_name = None
    list_per_page = 50
    #: Permission codenames of the model shown in Wagtail's group editor.
    permission_codenames: tuple[str, ...] = ()

    def get_common_view_kwargs(self, **kwargs):
        view_kwargs = super().get_common_view_kwargs(**kwargs)
        for name in ("add_url_name", "edit_url_name", "delete_url_name", "copy_url_name"):
            view_kwargs[name] = None
        view_kwargs["history_url_name"] = None
        view_kwargs["usage_url_name"] = None
        return view_kwargs

    def get_urlpatterns(self):
        return [
            path("", self.index_view, name="index"),
            path("results/", self.index_results_view, name="index_results"),
            path("<int:pk>/", self.inspect_view, name="inspect"),
        ]

    def get_permissions_to_register(self):
        return Permission.objects.filter(
            content_type__app_label=self.model._meta.app_label,
            codename__in=self.permission_codenames,
        )

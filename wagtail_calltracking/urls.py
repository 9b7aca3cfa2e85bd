"""Public endpoints: ``path("calltracking/", include("wagtail_calltracking.urls"))``."""

from django.urls import path

app_name = "wagtail_calltracking"

urlpatterns: list = []

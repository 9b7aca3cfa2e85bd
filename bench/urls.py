"""The example site's URLs plus static files served by Django (as in development)."""

from django.conf import settings
from django.contrib.staticfiles.views import serve
from django.urls import re_path
from example_site.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    re_path(rf"^{settings.STATIC_URL.lstrip('/')}(?P<path>.*)$", serve, {"insecure": True}),
    *site_urlpatterns,
]

"""The example site's URLs plus plain Django views for middleware tests."""

from django.http import HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.urls import include, path
from example_site.urls import urlpatterns as site_urlpatterns


def html_view(request):
    return HttpResponse("<html><head><title>Plain &amp; simple</title></head><body>Hi</body></html>")


def json_view(request):
    return JsonResponse({"ok": True})


def error_view(request):
    return HttpResponse("<html><title>Oops</title></html>", status=500)


def redirect_view(request):
    return HttpResponseRedirect("/plain/")


def streaming_view(request):
    return StreamingHttpResponse(iter([b"<html><title>Stream</title>", b"</html>"]), content_type="text/html")


def form_view(request):
    return HttpResponse("<html><title>Form</title></html>")


urlpatterns = [
    path("plain/", html_view),
    path("api/data.json", json_view),
    path("broken/", error_view),
    path("go/", redirect_view),
    path("stream/", streaming_view),
    path("form/", form_view),
    path("excluded/page/", html_view),
    path("", include(site_urlpatterns)),
]

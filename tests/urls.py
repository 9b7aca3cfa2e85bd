"""The example site's URLs plus plain Django views for middleware tests."""

from django.http import HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.template import engines
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


_NUMBER_PAGE = "{% load calltracking %}<html><title>Call us</title><body>{% tracking_number %}</body></html>"
_CACHE_SAFE_PAGE = (
    "{% load calltracking %}<html><title>Cached</title><body>{% tracking_number cache_safe=True %}</body></html>"
)


def number_view(request):
    """A plain Django view rendering the number tag inside the view (under ATOMIC_REQUESTS,
    inside the request's transaction)."""
    return HttpResponse(engines["django"].from_string(_NUMBER_PAGE).render({}, request))


def number_then_error_view(request):
    engines["django"].from_string(_NUMBER_PAGE).render({}, request)
    raise RuntimeError("the view fails after the tag leased")


def cache_safe_view(request):
    return HttpResponse(engines["django"].from_string(_CACHE_SAFE_PAGE).render({}, request))


urlpatterns = [
    path("plain/", html_view),
    path("api/data.json", json_view),
    path("broken/", error_view),
    path("go/", redirect_view),
    path("stream/", streaming_view),
    path("form/", form_view),
    path("number/", number_view),
    path("number-then-error/", number_then_error_view),
    path("cache-safe/", cache_safe_view),
    path("excluded/page/", html_view),
    path("", include(site_urlpatterns)),
]

"""Helpers of the hostile-input tests: every admin screen of the app, enumerated from the
registered viewsets (so a screen added later is covered without editing the tests), and every
URL pattern of the site with its view."""

from __future__ import annotations

from django.urls import URLResolver, get_resolver, reverse

#: Strings that must never reach an admin page unescaped.
SCRIPT = '<script>alert("ct-xss")</script>'
ATTRIBUTE = '"><img src=x onerror=alert("ct-xss")>'
RAW_MARKERS = ('<script>alert("ct-xss")', "<img src=x onerror", '"><img')


def calltracking_viewsets():
    """Every viewset of the "Call tracking" menu (calls, reports, configuration,
    integrations, erasure), after the hooks have registered them."""
    reverse("wagtailadmin_home")  # URLconf loaded: the admin modules are imported
    from wagtail_calltracking.admin.viewsets import calltracking_viewsets as viewsets

    return list(viewsets)


def admin_screens(objects: dict) -> list[tuple[str, str]]:
    """(url name, URL) of every admin view of the app. ``objects`` maps a model to an instance
    used for views that take a primary key."""
    screens = []
    for viewset in calltracking_viewsets():
        model = getattr(viewset, "model", None)
        for pattern in viewset.get_urlpatterns():
            name = f"{viewset.url_namespace}:{pattern.name}"
            converters = getattr(pattern.pattern, "converters", {})
            unknown = set(converters) - {"pk"}
            assert not unknown, f"{name}: teach tests/hostile_helpers.py the URL arguments {unknown}"
            kwargs = {"pk": objects[model].pk} if "pk" in converters else {}
            screens.append((name, reverse(name, kwargs=kwargs)))
    return screens


def url_patterns(urlconf=None):
    """(route, pattern) of every URL pattern, includes flattened."""

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern

    return list(walk(get_resolver(urlconf).url_patterns, ""))


def assert_escaped(html: str, where: str = "") -> None:
    for marker in RAW_MARKERS:
        assert marker not in html, f"{where}: unescaped {marker!r}"

"""Visitor and session capture. (Being written: see issue 2.)"""


class CallTrackingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

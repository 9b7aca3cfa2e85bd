"""The Wagtail admin of call tracking: calls, reports, configuration and the dashboard panel.

Registration happens in ``wagtail_calltracking/wagtail_hooks.py`` only; the viewsets that make
up the "Call tracking" menu are listed in :mod:`wagtail_calltracking.admin.viewsets`.
"""

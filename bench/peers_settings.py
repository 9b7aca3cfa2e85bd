"""Settings of bench/peers.py: the example site with the two peer packages installed as their
documentation says (their apps and tables present; each variant of the benchmark chooses
which tracking middleware runs). The peers come from the ``bench`` extra:
``pip install -e ".[bench]"`` (``make bench`` does it)."""

from example_site.settings import *  # noqa: F403
from example_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "request", "tracking"]

# django-tracking2 tracks anonymous visitors by default; django-request logs every request.
TRACK_ANONYMOUS_USERS = True
TRACK_PAGEVIEWS = True
# Like ours, keep the referrer and the query string of each page view.
TRACK_REFERER = True
TRACK_QUERY_STRING = True

"""Make generated migrations portable across Wagtail 7 (Page not swappable) and 8.

`makemigrations` writes `settings.WAGTAIL_PAGE_MODEL` and the newest wagtailcore migration
name; both break on Wagtail 7. Rewrite them the way wagtail.contrib.redirects does.
"""

import re
import sys
from pathlib import Path

for path in map(Path, sys.argv[1:]):
    text = path.read_text()
    original = text
    text = text.replace(
        "migrations.swappable_dependency(settings.WAGTAIL_PAGE_MODEL)",
        'swapper.dependency("wagtailcore", "Page")',
    )
    text = text.replace("to=settings.WAGTAIL_PAGE_MODEL", 'to=swapper.get_model_name("wagtailcore", "Page")')
    text = re.sub(r"\('wagtailcore', '0\d+_[a-z_]+'\)", "('wagtailcore', '0002_initial_data')", text)
    if text != original:
        if "import swapper" not in text:
            text = text.replace(
                "from django.db import migrations", "import swapper\nfrom django.db import migrations", 1
            )
        if "settings." not in text.replace("from django.conf import settings", ""):
            text = text.replace("from django.conf import settings\n", "")
        path.write_text(text)
        print(f"fixed {path}")

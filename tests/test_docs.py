"""The README's settings reference is generated from conf.py and must stay in sync."""

import subprocess
import sys
from pathlib import Path

from wagtail_calltracking.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent


def test_readme_settings_reference_is_current():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- settings:start")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- settings:end -->")
    expected = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "settings_table.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert readme[start:end].strip() == expected, "run scripts/settings_table.py and update README.md"
    for name in DEFAULTS:
        assert f"`{name}`" in readme

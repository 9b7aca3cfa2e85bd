"""Print the README's settings reference from the comments in wagtail_calltracking/conf.py.

    python scripts/settings_table.py   # paste between the markers in README.md
"""

import ast
import re
from pathlib import Path

CONF = Path(__file__).resolve().parent.parent / "wagtail_calltracking" / "conf.py"


def rows():
    source = CONF.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    defaults = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "DEFAULTS"
    )
    section, comment = "", []
    previous_end = defaults.lineno
    for key, value in zip(defaults.keys, defaults.values, strict=True):
        block = lines[previous_end : key.lineno - 1]
        texts = [line.strip()[1:].strip() for line in block if line.strip().startswith("#")]
        headers = [t for t in texts if t.startswith("---")]
        if headers:
            section = headers[-1].strip("- ").strip()
        texts = [t for t in texts if not t.startswith("---")]
        if texts:
            comment = texts
        default = ast.get_source_segment(source, value).replace("\n", " ")
        default = re.sub(r"\s+", " ", default)
        yield section, key.value, default, " ".join(comment)
        previous_end = value.end_lineno


def main():
    current = None
    for section, name, default, text in rows():
        if section != current:
            print(f"\n**{section.capitalize()}**\n\n| Setting | Default | |\n|---|---|---|")
            current = section
        print(f"| `{name}` | `{default}` | {text.replace('|', '/')} |")


if __name__ == "__main__":
    main()

"""The shell commands the README shows, parsed as a user would type them (for tests that run them as written)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section(heading: str) -> str:
    """The README text from ``heading`` to the next heading of level 2 or 3."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    ends = [i for i in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if i > 0]
    return text[start:min(ends, default=len(text))]


def bash_commands(text: str) -> list[list[str]]:
    """Every command of the ``bash`` blocks of ``text``: line continuations joined, comments dropped, split."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands

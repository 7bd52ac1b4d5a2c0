"""Print a command of README.md, exactly as a reader copies it.

``python .ci/readme_command.py tests`` prints the command of the section "Run the tests",
``python .ci/readme_command.py example`` the one of "Run the example provider": the only
line of the first ``sh`` code block of that section. ``.ci/run`` runs what this prints, so
CI runs the README's commands as a new user types them; ``tests/test_readme_commands.py``
checks that each section holds exactly one such command.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

SECTIONS = {
    "tests": "Run the tests",
    "example": "Run the example provider",
}


def section_commands(text: str, heading: str) -> list[str]:
    """The command lines of the first ``sh`` block under the ``## heading`` section."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise LookupError(f"README.md has no section '## {heading}'")
    block = re.search(r"^```sh\n(.*?)^```", match.group(1), re.M | re.S)
    if block is None:
        raise LookupError(f"section '## {heading}' of README.md has no sh code block")
    return [line for line in block.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def command(name: str, text: str | None = None) -> str:
    """The one command of the README section called ``name`` (a key of SECTIONS)."""
    lines = section_commands(README.read_text(encoding="utf-8") if text is None else text,
                             SECTIONS[name])
    if len(lines) != 1:
        raise LookupError(f"section '## {SECTIONS[name]}' must hold exactly one command, "
                          f"found {len(lines)}: {lines}")
    return lines[0]


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SECTIONS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(SECTIONS)}}}")
    print(command(sys.argv[1]))

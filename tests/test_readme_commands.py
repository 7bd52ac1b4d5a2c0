"""CI runs the README's two commands exactly as a new user types them.

``.ci/run`` does not keep copies of the commands: it runs what ``.ci/readme_command.py``
reads from README.md, in a fresh virtual environment, before installing anything else.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI_RUN = ROOT / ".ci" / "run"


def _reader() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_command",
                                                  ROOT / ".ci" / "readme_command.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_states_one_test_command_and_one_example_command() -> None:
    reader = _reader()
    assert reader.command("tests") == 'pip install -e ".[test]" && pytest'
    assert reader.command("example") == 'pip install -e ".[example]" && python -m example'


@pytest.mark.parametrize("name", ["tests", "example"])
def test_the_script_prints_the_readme_command(name: str) -> None:
    printed = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_command.py"), name],
                             check=True, capture_output=True, text=True).stdout
    assert printed == _reader().command(name) + "\n"


def test_a_section_with_two_commands_or_none_is_refused() -> None:
    reader = _reader()
    two = "## Run the tests\n\n```sh\npip install foo\npytest\n```\n"
    with pytest.raises(LookupError, match="exactly one command"):
        reader.command("tests", two)
    with pytest.raises(LookupError, match="no section"):
        reader.command("tests", "## Install\n")
    with pytest.raises(LookupError, match="no sh code block"):
        reader.command("tests", "## Run the tests\n\nJust run it.\n")
    commented = "## Run the tests\n\n```sh\n# a comment\npip install -e .[test] && pytest\n```\n"
    assert reader.command("tests", commented) == "pip install -e .[test] && pytest"


def test_ci_runs_the_readme_commands_in_a_fresh_environment_first() -> None:
    script = CI_RUN.read_text(encoding="utf-8")
    lines = [line.strip() for line in script.splitlines()]
    venv = lines.index('python3 -m venv "$VENV"')
    activate = lines.index('source "$VENV/bin/activate"')
    tests = lines.index('TESTS_CMD=$(python .ci/readme_command.py tests)')
    example = lines.index('EXAMPLE_CMD=$(python .ci/readme_command.py example)')
    run_tests = lines.index('bash -c "$TESTS_CMD" || status=$?')
    run_example = next(i for i, line in enumerate(lines) if 'bash -c "$EXAMPLE_CMD"' in line)
    assert venv < activate < tests < example < run_tests < run_example
    # nothing is installed before the README's commands ran
    installs = [i for i, line in enumerate(lines)
                if re.search(r"\bpip install\b", line) and not line.startswith("#")]
    assert installs and min(installs) > run_example
    assert "exit 1" in script.split('bash -c "$TESTS_CMD"', 1)[1].split("fi", 1)[0], \
        "pytest's exit code 5 (no tests collected) must fail CI"

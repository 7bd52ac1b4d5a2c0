"""Interpreters for the compatibility tests, built once per test session.

* ``pyop3_python``: a Python with pyop 3.5.0 (the differential tests run
  ``pyop3_harness.py`` with it). ``PYOP_TEST_PYOP3_PYTHON`` names an existing one;
  otherwise a virtualenv is created in the session's temporary directory and
  ``pyop==3.5.0`` installed into it from the package index.
* ``satosa_python``: a Python with SATOSA 8.6.0 whose ``pyop`` is this checkout.
  ``PYOP_TEST_SATOSA_PYTHON`` names an existing one (this checkout is then put first
  on ``PYTHONPATH``); otherwise a second virtualenv gets ``satosa==8.6.0`` (which
  brings pyop 3) and then this checkout installed over it with ``--no-deps``.

Nothing is ever installed into the interpreter running the tests. When a virtualenv
cannot be built (no network, no index) the tests are skipped with the reason, except
under ``PYOP_REQUIRE_SERVERS=1`` (CI), where they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from storage.conftest import engine_unavailable, redis_server  # noqa: F401 - fixture re-used

REPO_ROOT = Path(__file__).resolve().parents[2]
PYOP3_VERSION = "3.5.0"
SATOSA_VERSION = "8.6.0"
#: pip install limit for one virtualenv (seconds)
INSTALL_TIMEOUT = 420


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in tests/compat/ carries the ``compat`` marker (``-m "not compat"``)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.compat)


def unavailable(reason: str) -> Any:
    """Skip loudly, or fail under PYOP_REQUIRE_SERVERS=1 (the storage engines' rule)."""
    return engine_unavailable(f"compatibility test interpreter: {reason}")


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               PIP_ROOT_USER_ACTION="ignore")
    env.pop("PYTHONPATH", None)
    return subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=INSTALL_TIMEOUT, check=False, **kwargs)


def build_venv(directory: Path, *requirement_sets: list[str]) -> Path:
    """A virtualenv in ``directory`` with each requirement set pip-installed in turn."""
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    except Exception as error:  # noqa: BLE001 - ensurepip missing etc.
        unavailable(f"cannot create a virtualenv: {error}")
    python = directory / "bin" / "python"
    for requirements in requirement_sets:
        try:
            result = _run([str(python), "-m", "pip", "install", "-q", *requirements])
        except subprocess.TimeoutExpired:
            unavailable(f"pip install {' '.join(requirements)} took over {INSTALL_TIMEOUT} s")
        if result.returncode != 0:
            unavailable(f"pip install {' '.join(requirements)} failed: "
                        f"{(result.stderr or result.stdout)[-800:]}")
    return python


def _probe(python: str, code: str, env: dict[str, str] | None = None) -> Any:
    # run outside the checkout: with the checkout as the working directory, ``-c`` code
    # would import its pyop and read its pyop.egg-info metadata
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120,
                            env=env, check=False, cwd=tempfile.gettempdir())
    if result.returncode != 0:
        unavailable(f"{python} cannot run the probe: {result.stderr[-600:]}")
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def pyop3_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a Python interpreter that imports pyop 3.5.0."""
    given = os.environ.get("PYOP_TEST_PYOP3_PYTHON")
    if given:
        if not Path(given).is_file():
            unavailable(f"PYOP_TEST_PYOP3_PYTHON={given} does not exist")
        python = given
    else:
        python = str(build_venv(tmp_path_factory.mktemp("pyop3-venv"),
                                [f"pyop=={PYOP3_VERSION}"]))
    version = _probe(python, "import json, importlib.metadata as m; "
                             "print(json.dumps(m.version('pyop')))")
    if version != PYOP3_VERSION:
        unavailable(f"{python} has pyop {version}, not {PYOP3_VERSION}")
    return python


@dataclass
class SatosaPython:
    """An interpreter with SATOSA whose ``import pyop`` is this checkout."""

    python: str
    env: dict[str, str] = field(default_factory=dict)


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


_PYOP_PROBE = """
import json, pathlib, hashlib, importlib.metadata as m, pyop
root = pathlib.Path(pyop.__file__).parent
d = hashlib.sha256()
for p in sorted(root.rglob("*.py")):
    d.update(p.relative_to(root).as_posix().encode() + b"\\0" + p.read_bytes())
print(json.dumps({"file": pyop.__file__, "digest": d.hexdigest(),
                  "satosa": m.version("satosa")}))
"""


@pytest.fixture(scope="session")
def satosa_python(tmp_path_factory: pytest.TempPathFactory) -> SatosaPython:
    """SATOSA 8.6.0 with this checkout's pyop (verified by the package's content)."""
    given = os.environ.get("PYOP_TEST_SATOSA_PYTHON")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if given:
        if not Path(given).is_file():
            unavailable(f"PYOP_TEST_SATOSA_PYTHON={given} does not exist")
        python = given
        env["PYTHONPATH"] = str(REPO_ROOT)  # this checkout before the installed pyop 3
    else:
        directory = tmp_path_factory.mktemp("satosa-venv")
        python = str(build_venv(directory / "venv",
                                [f"satosa=={SATOSA_VERSION}", "mongomock", "pymongo>=4.6",
                                 "redis>=5.0"]))
        # this checkout over the pyop 3 that SATOSA brought; built from a copy so that
        # no build artefacts land in the source tree
        source = directory / "src"
        _copy_checkout(source)
        result = _run([python, "-m", "pip", "install", "-q", "--no-deps", str(source)])
        if result.returncode != 0:
            unavailable(f"pip install --no-deps <checkout> failed: {result.stderr[-800:]}")
    probe = _probe(python, _PYOP_PROBE, env=dict(env, PYTHONNOUSERSITE="1"))
    expected = _tree_digest(REPO_ROOT / "pyop")
    assert probe["satosa"] == SATOSA_VERSION, probe
    assert probe["digest"] == expected, (
        f"the SATOSA interpreter imports pyop from {probe['file']}, not this checkout")
    return SatosaPython(python, env)


def _copy_checkout(target: Path) -> None:
    """The packaging-relevant files of this checkout (setup.py, pyproject, pyop/, README...)."""
    target.mkdir(parents=True)
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in",
                 "CHANGELOG.md"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, target / name)
    shutil.copytree(REPO_ROOT / "pyop", target / "pyop",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def run_json(python: str, script: Path, payload: Any, env: dict[str, str] | None = None,
             timeout: int = 240) -> Any:
    """Run ``script`` with ``python``, ``payload`` as JSON on stdin; its JSON stdout.

    The script runs with a fixed ``PYTHONHASHSEED``: pyop 3 and oic build some answers from
    sets (``scopes_supported``, narrowed ``response_types``...), whose order otherwise
    changes from run to run."""
    env = dict(os.environ if env is None else env, PYTHONHASHSEED="0")
    result = subprocess.run([python, str(script)], input=json.dumps(payload), text=True,
                            capture_output=True, timeout=timeout, env=env, check=False,
                            cwd=str(script.parent))
    assert result.returncode == 0, f"{script.name} failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout)


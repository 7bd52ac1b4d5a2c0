"""Expectations written down elsewhere in the suite, checked against pyop 3.5.0 itself.

* ``PYOP3_METHODS`` (``tests/test_authz_state_pyop3_api.py``) is every public method of
  pyop 3.5.0's ``AuthorizationState`` with its parameters;
* the same ``AuthorizationState`` calls made through pyop 3's API on pyop 3.5.0 and on
  this library give the same results, but for ``EXPECTED_DIFFERENCES`` (each of which must
  still be a difference);
* the golden subject identifiers and claims of ``tests/compat/data/subjects_pyop3.json``
  regenerate unchanged with pyop 3.5.0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_authz_state_pyop3_api import (
    EXPECTED_DIFFERENCES,
    LIST_PYOP3_METHODS,
    PYOP3_METHODS,
    run_driver,
)
from test_upgrade_subjects import _RANDOM, GOLDEN_PATH

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def test_pyop3_method_list_is_complete(pyop3_python: str) -> None:
    done = subprocess.run([pyop3_python, "-c", LIST_PYOP3_METHODS], capture_output=True,
                          text=True, cwd="/", timeout=120, check=True)
    theirs = json.loads(done.stdout)
    assert theirs.pop("use_refresh_token") == ["refresh_token", "scope"]
    assert theirs == PYOP3_METHODS


def test_authorization_state_differential(pyop3_python: str) -> None:
    theirs = run_driver(Path(pyop3_python), "")
    ours = run_driver(Path(sys.executable), str(ROOT))
    assert theirs.keys() == ours.keys()
    for config, observed in theirs.items():
        if not isinstance(observed, dict) or config in ("access_token", "access_token_default"):
            assert ours[config] == observed, config
            continue
        assert ours[config].keys() == observed.keys(), config
        for name, value in observed.items():
            expected = EXPECTED_DIFFERENCES.get((config, name))
            if expected is None:
                assert ours[config][name] == value, (config, name)
            else:
                assert ours[config][name] == expected, (config, name)
                assert value != expected, f"{config}/{name}: no longer a difference"


def test_subject_golden_values_regenerate_unchanged(pyop3_python: str, tmp_path: Path) -> None:
    out = tmp_path / "subjects.json"
    subprocess.run([pyop3_python, str(HERE / "make_subjects_golden.py"), str(out)],
                   check=True, timeout=600, cwd=str(tmp_path),
                   env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    fresh = json.loads(out.read_text(encoding="utf-8"))

    def stable(data: dict[str, Any]) -> Any:
        # the ID tokens' c_hash/at_hash hash random codes and tokens
        for case in data["claims"]:
            for member in ("authorization_id_token", "token_id_token"):
                for name in _RANDOM:
                    case.get(member, {}).pop(name, None)
        return data

    assert stable(fresh) == stable(json.loads(GOLDEN_PATH.read_text(encoding="utf-8")))

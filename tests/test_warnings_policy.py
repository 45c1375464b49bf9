"""The suite's warning policy (pytest.ini): a deprecation warned at a call from this package fails a test; the same
warning raised elsewhere does not. Checked by running pytest on two deliberate tests with the project's pytest.ini."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

DELIBERATE = '''
import types
import warnings


def _call_from(module_name):
    """A module named `module_name` calls an API that warns with stacklevel=2: the warning names the caller's module."""
    def deprecated_api():
        warnings.warn("deprecated_api is deprecated", DeprecationWarning, stacklevel=2)

    caller = types.ModuleType(module_name)
    caller.deprecated_api = deprecated_api
    exec("def call():\\n    deprecated_api()", caller.__dict__)
    caller.call()


def test_called_from_this_package():
    _call_from("dawe_merge.some_module")


def test_called_from_a_library():
    _call_from("some_library.module")
'''


def test_a_deprecation_this_package_calls_fails_and_a_librarys_own_does_not(tmp_path):
    (tmp_path / "test_deliberate.py").write_text(DELIBERATE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(tmp_path),
                           str(tmp_path / "test_deliberate.py")], capture_output=True, text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    assert "1 failed, 1 passed" in done.stdout, done.stdout[-2000:]
    assert "FAILED test_deliberate.py::test_called_from_this_package" in done.stdout, done.stdout[-2000:]
    assert "DeprecationWarning: deprecated_api is deprecated" in done.stdout, done.stdout[-2000:]

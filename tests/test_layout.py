"""Guards for the project layout that DESIGN.md explains."""

import platform
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_it_has_no_top_level_package_shadowing_the_platform_module():
    assert not (REPO_ROOT / "platform").exists()
    assert platform.__file__.startswith(sys.base_prefix)
    assert platform.system()


def test_it_imports_torch_beside_django():
    # torch calls platform.system() at import; this fails if anything shadows the module.
    result = subprocess.run(
        [sys.executable, "-c", "import django, torch, uuid; print(torch.__version__)"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_python(code: str, devices: int | None = None, timeout: float = 600, env: dict | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    "Run `code` in a fresh Python process (optionally with N simulated CPU devices); return the result."
    e = dict(os.environ)
    if devices:
        e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT), e.get("PYTHONPATH", "")])
    e.update(env or {})
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=e)
    if check and r.returncode != 0:
        raise AssertionError(f"subprocess failed ({r.returncode}):\nSTDOUT:\n{r.stdout}\nSTDERR:\n{r.stderr}")
    return r


@pytest.fixture
def python():
    return run_python


# ---------------------------------------------------------------------------------------- system tools
APT_PACKAGES = {"chromium": ["chromium"], "npm": ["npm"]}
APT_LOCK = Path(os.environ.get("DPATTERN_APT_LOCK", "/tmp/dpattern-apt.lock"))


def _found(tool: str) -> str | None:
    import shutil
    if tool == "chromium":
        path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        return path if Path(path).exists() else shutil.which(path)
    return shutil.which(tool)


def require_system_tool(tool: str) -> str:
    """The path of `tool` ('chromium' or 'npm'). When it is missing, install it with apt-get (as root, under
    a file lock so that parallel test workers install it once), or fail with the exact command to run."""
    import fcntl
    import shutil
    path = _found(tool)
    if path:
        return path
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES[tool]]
    hint = f"apt-get update && {' '.join(cmd)}"
    if tool == "chromium" and "CHROMIUM" in os.environ:
        pytest.fail(f"Chromium not found at CHROMIUM={os.environ['CHROMIUM']}; point CHROMIUM at it or unset it "
                    f"(Debian: {hint})", pytrace=False)
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.fail(f"{tool} is not installed and the tests cannot install it here (they need root and apt-get); "
                    f"run: sudo {hint}", pytrace=False)
    with open(APT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)            # another worker may be installing it right now
        try:
            if not _found(tool):
                env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
                for c in (["apt-get", "update", "-q"], cmd):
                    r = subprocess.run(c, capture_output=True, text=True, env=env, timeout=1800)
                    if r.returncode != 0:
                        pytest.fail(f"installing {tool} failed: {' '.join(c)} exited {r.returncode}:\n"
                                    f"{(r.stderr or r.stdout)[-2000:]}\nrun: {hint}", pytrace=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    path = _found(tool)
    if not path:
        pytest.fail(f"apt-get installed {APT_PACKAGES[tool]} but {tool} is still not found; run: {hint}", pytrace=False)
    return path


def require_browser() -> str:
    "Chromium (installed if missing, see `require_system_tool`) and the playwright package; the Chromium path."
    path = require_system_tool("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[dev]' (never `playwright install`; "
                    "the tests drive the system Chromium)", pytrace=False)
    return path

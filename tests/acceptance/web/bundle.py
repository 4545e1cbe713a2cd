"""The browser bundles the tests serve, built from the sources with the real npm packages.

Once per test session (and cached across sessions, keyed by the sources and the lockfile):
``npm ci`` in ``clients/web`` when its ``node_modules`` does not match the lockfile, then
esbuild (from npm) builds the page exactly as ``make web`` does, plus the test harness (the
hook and the token provider on their own, React in development mode so StrictMode mounts
twice). Without Node or npm the browser tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WEB = ROOT / "clients" / "web"
HARNESS_DIR = Path(__file__).resolve().parent
LOCKFILE = WEB / "package-lock.json"
LOCK_STAMP = WEB / "node_modules" / ".lock.sha256"
"""Written after ``npm ci`` (here and by ``make web``): the lockfile it installed."""
CACHE = WEB / "node_modules" / ".cache" / "tradetrust-tests"
NPM_CI_TIMEOUT_S = 600
BUILD_TIMEOUT_S = 180
PAGE_FILES = ("order-chat.html", "order-chat.js", "order-chat.css")


@dataclass(frozen=True)
class Bundles:
    """Where the built files are."""

    page: Path
    """The production page, as shipped in ``clients/web/dist``."""
    harness: Path
    """``harness.html`` + ``harness.js`` (development build)."""


def unavailable(reason: str) -> None:
    """Skip, or fail under CI (where Node and npm are required)."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _run(command: list[str], cwd: Path, timeout_s: float) -> None:
    try:
        result = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        unavailable(f"{' '.join(command)} took more than {timeout_s:.0f}s")
        return
    if result.returncode != 0:
        unavailable(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")


def lock_digest() -> str:
    return hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()


def ensure_node_modules() -> None:
    """``npm ci`` unless ``node_modules`` was installed from this very lockfile."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable("node and npm are needed to bundle the chat page (apt-get install nodejs npm)")
    stamp = LOCK_STAMP.read_text().split()[0] if LOCK_STAMP.exists() else ""
    if stamp == lock_digest():
        return
    _run(["npm", "ci", "--no-audit", "--no-fund"], WEB, NPM_CI_TIMEOUT_S)
    LOCK_STAMP.write_text(f"{lock_digest()}  package-lock.json\n")


def _sources_digest() -> str:
    digest = hashlib.sha256()
    inputs = [LOCKFILE, WEB / "build.mjs", *sorted((WEB / "src").rglob("*"))]
    inputs += sorted((WEB / "public").rglob("*")) + sorted(HARNESS_DIR.glob("harness*"))
    inputs += [HARNESS_DIR / "build_harness.mjs"]
    for path in inputs:
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build() -> Bundles:
    """The bundles for the current sources: from the cache, or built now."""
    ensure_node_modules()
    target = CACHE / _sources_digest()
    bundles = Bundles(page=target / "page", harness=target / "harness")
    if (target / "complete").exists():
        return bundles
    if CACHE.exists():  # builds of older sources
        for old in CACHE.iterdir():
            shutil.rmtree(old, ignore_errors=True)
    _run(["node", "build.mjs", "--outdir", str(bundles.page)], WEB, BUILD_TIMEOUT_S)
    _run(
        ["node", str(HARNESS_DIR / "build_harness.mjs"), "--outdir", str(bundles.harness)],
        WEB,
        BUILD_TIMEOUT_S,
    )
    (target / "complete").write_text("")
    return bundles

"""A throwaway PostgreSQL server for tests, started from Debian's ``postgresql`` binaries.

``initdb`` refuses to run as root, so as root every server command runs as the
``postgres`` OS user (``runuser``), on a data directory in a temporary directory it owns.
The server listens on 127.0.0.1 on a free port, with its unix socket in that directory and
trust authentication; nothing outside the temporary directory is touched.

Fixtures (registered by ``tests/conftest.py``):

- ``pg_server``: one server for the whole session;
- ``pg_url``: a fresh, empty database on it for each test (dropped afterwards);
- ``pg_private``: a server of the test's own, for tests that stop and restart it.

When the binaries are missing the fixtures skip, except under ``CI=true`` where they
fail: CI installs ``postgresql`` (``.ci/run``), so PostgreSQL tests must never silently
disappear there.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.helpers.ports import free_port

__all__ = ["PostgresServer", "find_bindir", "pg_private", "pg_server", "pg_url"]

_DB_NAMES = itertools.count(1)


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with ``initdb``, else ``initdb`` on PATH."""
    candidates = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        major = initdb.parent.parent.name
        if major.isdigit():
            candidates.append((int(major), initdb.parent))
    if candidates:
        return max(candidates)[1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; start, stop, restart at will."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="tt-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, user="postgres", group="postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / tool), *args]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(
            cmd, cwd=self.root, capture_output=True, text=True, timeout=60, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{self.log_tail()}"
            )
        return result

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server log, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> None:
        """Start the server and wait until it accepts connections (same port every time)."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            # fsync=off only weakens durability against an OS crash; a killed server
            # still recovers every committed transaction from its WAL.
            "-c fsync=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean) or ``immediate`` (like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", mode, "stop")

    def is_running(self) -> bool:
        """Whether the postmaster is up."""
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URI for ``dbname`` on this server, over TCP on loopback."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t{os.getpid()}_{next(_DB_NAMES)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, disconnecting its clients."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def destroy(self) -> None:
        """Stop the server if it runs and delete its directory."""
        try:
            if self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _bindir_or_skip() -> Path:
    bindir = find_bindir()
    if bindir is None:
        message = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found: "
            "apt-get install postgresql (.ci/run does this in CI)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return bindir


def _started(bindir: Path) -> PostgresServer:
    server = PostgresServer(bindir)
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server shared by the session."""
    server = _started(_bindir_or_skip())
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test; dropped afterwards."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def pg_private() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may stop and restart."""
    server = _started(_bindir_or_skip())
    try:
        yield server
    finally:
        server.destroy()

"""A real PostgreSQL server for the tests, started from the Debian packages (``ops/install-system-deps.sh``).

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user (``runuser``) in a
temporary folder it owns; it listens on loopback on a free port (and on a unix socket in that folder), with
durability off (a test database is thrown away). Each test gets a database of its own on the one server.
Without the binaries a test is skipped saying so, except on CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from agent_pipeline_tests.conftest import free_port

SERVER_USER = "postgres"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps them under /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable(reason: str) -> None:
    """Skip, or fail on CI, where the install script must have provided PostgreSQL."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL tests cannot run on CI: {reason} (ops/install-system-deps.sh installs it)")
    pytest.skip(f"PostgreSQL not available here: {reason}; run ops/install-system-deps.sh")


class PostgresServer:
    """One throw-away cluster: ``start()``, ``url(database)``, ``create_database()``, ``stop()``."""

    def __init__(self, bindir: Path, *, listen: str = "127.0.0.1", allow: tuple[str, ...] = ()):
        """``listen``: the addresses to listen on; ``allow``: networks (CIDR) beyond loopback let in."""
        self.bindir = bindir
        self.listen = listen
        self.allow = allow
        self.root = Path(tempfile.mkdtemp(prefix="agent_pipeline_pg_"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.process: subprocess.Popen | None = None
        self._databases = 0

    def _run_as(self) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--"] if self.as_root else []

    def start(self) -> PostgresServer:
        if self.as_root:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                unavailable(f"no '{SERVER_USER}' user to run the server as (initdb refuses root)")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        subprocess.run([*self._run_as(), str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, capture_output=True, timeout=120)
        if self.allow:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.writelines(f"host all all {network} trust\n" for network in self.allow)
        self.process = subprocess.Popen(
            [*self._run_as(), str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-h", self.listen, "-k", str(self.root), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "log_min_messages=warning"],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "server.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start on port {self.port}: {log}")
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        result = subprocess.run([str(self.bindir / "pg_isready"), "-h", self.host, "-p", str(self.port)],
                                capture_output=True)
        return result.returncode == 0

    @property
    def host(self) -> str:
        return self.listen.split(",")[0]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run([*self._run_as(), str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m",
                            "immediate"], capture_output=True, timeout=60)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server (skipped with the reason where none can run, failed on CI)."""
    bindir = binaries()
    if bindir is None:
        unavailable("no initdb under /usr/lib/postgresql/*/bin or on PATH")
    server = PostgresServer(bindir)
    try:
        server.start()
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        server.stop()
        unavailable(f"the server did not start ({exc})")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server, as a store URL."""
    return postgres_server.create_database()

"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, listening on loopback.

``.ci/run`` installs PostgreSQL from Debian's packages (``apt-get install postgresql``); tests that
need the server are skipped, naming what is missing, only where the server binaries or the Python
driver (psycopg or psycopg2) cannot be found. ``HMS_PG_BINDIR`` names the folder holding initdb/pg_ctl (searched
before PATH and /usr/lib/postgresql/*/bin); ``HMS_PG_BINDIR=none`` makes the server unavailable, to
exercise the skip path.

PostgreSQL refuses to run as root: under euid 0 the server commands run as the ``postgres`` system
user (created by the Debian package) through ``runuser`` (or ``su``), with the data folder owned by
that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_HINT = "run .ci/run, or: apt-get install postgresql (Debian) and pip install -e '.[postgres]'"
BINARIES = ("initdb", "pg_ctl")
DRIVERS = ("psycopg", "psycopg2")
SERVER_USER = "postgres"
START_TIMEOUT_S = 30


def search_dirs() -> list[str]:
    """Folders searched for initdb/pg_ctl, in order: $HMS_PG_BINDIR, PATH, /usr/lib/postgresql/*/bin
    (newest version first)."""
    explicit = os.environ.get("HMS_PG_BINDIR")
    if explicit is not None:
        return [] if explicit.lower() in ("", "none") else [explicit]
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: [int(p) if p.isdigit() else 0 for p in Path(d).parent.name.split(".")],
        reverse=True,
    )
    return path + versions


def find_bindir(dirs: list[str] | None = None) -> str | None:
    """The first folder holding both initdb and pg_ctl (the server binaries), or None."""
    for d in search_dirs() if dirs is None else dirs:
        if all(os.access(os.path.join(d, name), os.X_OK) for name in BINARIES):
            return d
    return None


def driver():
    """The installed PostgreSQL driver module (psycopg 3, which the ``postgres`` extra installs, or
    psycopg2), or None."""
    import importlib

    for name in DRIVERS:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def unavailable_reason(dirs: list[str] | None = None) -> str | None:
    """Why a test server cannot be started here (None when it can): the missing binary, driver or user."""
    if driver() is None:
        return f"no PostgreSQL driver for Python ({' or '.join(DRIVERS)}) is installed ({INSTALL_HINT})"
    if find_bindir(dirs) is None:
        where = ", ".join(dirs if dirs is not None else (search_dirs() or ["HMS_PG_BINDIR=none"]))
        return f"PostgreSQL server binaries ({'/'.join(BINARIES)}) not found in {where} ({INSTALL_HINT})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return (
                f"running as root and there is no '{SERVER_USER}' system user to run the PostgreSQL "
                f"server as ({INSTALL_HINT}: the Debian package creates it)"
            )
        if not (shutil.which("runuser") or shutil.which("su")):
            return "running as root and neither runuser nor su is available to run PostgreSQL as another user"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bindir: str
    root: Path  # temporary folder: data/, sockets, server.log
    port: int
    database: str = "hms_test"

    @property
    def url(self) -> str:
        """The URL as users write it: no driver named (hms.tune picks the installed one)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            if shutil.which("runuser"):
                cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
            else:
                cmd = ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(cmd)]
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def _check(self, done: subprocess.CompletedProcess, what: str) -> None:
        if done.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL {what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")

    def start(self) -> None:
        self._check(
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"
            ),
            "initdb",
        )
        for attempt in range(3):  # the free port may be taken by someone else before the server binds it
            self.port = self.port if attempt == 0 else free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
            )
            done = self._run(
                "pg_ctl",
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-o",
                options,
                timeout=START_TIMEOUT_S + 10,
            )
            if done.returncode == 0 or "already in use" not in (self.log.read_text() if self.log.exists() else ""):
                break
            self.log.unlink(missing_ok=True)
        self._check(done, "pg_ctl start")
        self._create_database()

    def _create_database(self) -> None:
        db = driver()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # pg_ctl -w has waited for readiness; this only covers a slow first connection
            try:
                conn = db.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=5")
                break
            except db.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()

    def new_database(self, name: str) -> str:
        """Creates another database on this server; returns its URL."""
        other = PostgresServer(self.bindir, self.root, self.port, name)
        other._create_database()
        return other.url

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "20", timeout=30)


def start_server(dirs: list[str] | None = None) -> PostgresServer:
    """Starts a server in a new temporary folder (caller: ``stop_server``). Raises RuntimeError when an
    available server fails to start (that is a failure, not a reason to skip)."""
    bindir = find_bindir(dirs)
    assert bindir is not None, unavailable_reason(dirs)
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="hms-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PostgresServer(bindir, root, free_port())
    try:
        server.start()
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: PostgresServer) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on 127.0.0.1 for the test session (skips, naming what is missing, where
    PostgreSQL or its driver is not installed). ``.url`` is a fresh database; ``.new_database(name)``
    makes more."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = start_server()
    try:
        yield server
    finally:
        stop_server(server)

"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` in a temp dir, a free port on 127.0.0.1.

Uses the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<major>/bin``, or ``pg_ctl`` on
the PATH). PostgreSQL refuses to run as root, so when this process is root the cluster is created and run as the
``postgres`` user (or ``nobody``), with the temp dir owned by it. The superuser ``goldwatch`` logs in over TCP with
a random password (SCRAM), so the tests exercise real credentials; local socket logins are trusted, for admin.

>>> find_postgres_bin() is None or (find_postgres_bin() / "initdb").exists()
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from goldwatch.errors import DependencyMissingError, ServerUnreachableError

__all__ = ["PostgresServer", "find_postgres_bin", "running_postgres", "start_postgres"]

SUPERUSER = "goldwatch"


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (the newest Debian major version), or None."""
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    lib = Path("/usr/lib/postgresql")
    if lib.is_dir():
        versions = sorted((p for p in lib.iterdir() if p.name.replace(".", "").isdigit()),
                          key=lambda p: float(p.name), reverse=True)
        candidates += [p / "bin" for p in versions]
    for d in candidates:
        if all((d / exe).exists() for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _free_port() -> int:
    from goldwatch.runtimes.mlserver_testing import free_ports

    return free_ports(1)[0]


@dataclasses.dataclass
class PostgresServer:
    """A running throwaway cluster. :meth:`stop` and :meth:`start` restart it on the same port and data."""

    bin_dir: Path
    base: Path
    port: int
    password: str = dataclasses.field(repr=False)
    uid: int | None = None
    gid: int | None = None
    fsync: bool = False

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, dbname: str = "postgres", *, schema: str | None = None, with_password: bool = True) -> str:
        """A ``postgresql://`` URL for the superuser (``schema``: put first on the search path)."""
        auth = f"{SUPERUSER}:{quote(self.password, safe='')}" if with_password else SUPERUSER
        url = f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"
        if schema:
            url += "?options=" + quote(f"-csearch_path={schema}", safe="")
        return url

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), user=self.uid, group=self.gid, extra_groups=[] if self.uid else None,
                              capture_output=True, text=True, timeout=timeout, check=False, cwd=self.base,
                              env={**os.environ, "LC_ALL": "C", "PGTZ": "UTC"})

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                f"-c fsync={'on' if self.fsync else 'off'} -c full_page_writes={'on' if self.fsync else 'off'}")
        done = self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"),
                         "-o", opts, "-w", "-t", "60", "start", timeout=90)
        if done.returncode != 0:
            log = (self.base / "server.log").read_text(errors="replace")[-2000:] if (
                self.base / "server.log").exists() else ""
            raise ServerUnreachableError(f"PostgreSQL did not start: {done.stderr.strip()[-500:]} {log}",
                                         where=str(self.data))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: like a crash -- clients see their connections drop mid-statement)."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", timeout=60)

    def admin(self, sql: str) -> None:
        """Run ``sql`` as the superuser over the local socket (trusted)."""
        done = self._run(str(self.bin_dir / "psql") if (self.bin_dir / "psql").exists() else "psql",
                         "-h", str(self.base), "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres",
                         "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql)
        if done.returncode != 0:
            raise ServerUnreachableError(f"psql failed: {done.stderr.strip()}", where=str(self.base))

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


def _run_as() -> tuple[int | None, int | None]:
    if os.geteuid() != 0:
        return None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise DependencyMissingError("running as root and there is no unprivileged user to run PostgreSQL as",
                                 hint="create one: useradd --system postgres")


def start_postgres(*, fsync: bool = False) -> PostgresServer:
    """initdb a new cluster in a temp dir and start it on a free port; call :meth:`PostgresServer.remove` after."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise DependencyMissingError("the PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found",
                                     hint="apt-get install postgresql")
    uid, gid = _run_as()
    base = Path(tempfile.mkdtemp(prefix="goldwatch-pg-"))  # in /tmp itself: the server's user must reach it
    password = secrets.token_urlsafe(18)
    server = PostgresServer(bin_dir, base, _free_port(), password, uid, gid, fsync)
    try:
        pwfile = base / "pw"
        pwfile.write_text(password + "\n")
        if uid is not None:
            os.chown(base, uid, gid if gid is not None else -1)
            os.chown(pwfile, uid, gid if gid is not None else -1)
        done = server._run(str(bin_dir / "initdb"), "-D", str(server.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                           "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
                           "--no-sync", "--no-instructions", timeout=120)
        pwfile.unlink()
        if done.returncode != 0:
            raise ServerUnreachableError(f"initdb failed: {done.stderr.strip()[-800:]}", where=str(server.data))
        server.start()
    except BaseException:
        server.remove()
        raise
    return server


@contextlib.contextmanager
def running_postgres(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """A started throwaway server, removed (stopped, its directory deleted) at the end."""
    server = start_postgres(fsync=fsync)
    try:
        yield server
    finally:
        server.remove()

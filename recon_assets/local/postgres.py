"""A real PostgreSQL server for local mode, the demo and the tests: one piece of code for all three.

Why a real server and not SQLite or a mock: the extract streams with server-side cursors, the
seeder bulk-loads with COPY, the schema uses triggers, CHECKs and advisory locks. Only Postgres
behaves like Postgres.

How it runs:
- Debian's binaries in `/usr/lib/postgresql/<newest>/bin` (or `bin_dir`). `initdb` and `pg_ctl`
  refuse to run as root, so as root every command runs as the unprivileged `postgres` user through
  `runuser -u postgres --`, and the data dir is chowned to it. We check that `postgres` can reach
  the data dir through its parents and fail with a clear message instead of loosening permissions
  on the user's folders.
- No system binaries: the `pgserver` pip package if it is importable (it bundles PostgreSQL), else
  an error that says what to install.
- `pg_ctl start` daemonises the server: it outlives the Python process that started it, so the
  demo, `recon dev` and every Dagster run process share one server. The DSN is recorded in
  `<data_dir>.json` next to the data dir and a later `start()` reuses the running server. A file
  lock serialises concurrent `start()`/`stop()` calls for one data dir.
- The server listens on 127.0.0.1 only, with `trust` authentication: a local throwaway database,
  so there is no password to store anywhere. `durable=False` (tests) adds `fsync=off`.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from recon_assets.config import ConfigError

if TYPE_CHECKING:
    from recon_assets.config import ReconSettings

log = logging.getLogger(__name__)

DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
SUPERUSER = "postgres"
DEFAULT_DBNAME = "recon"
_START_ATTEMPTS = 5
_UNIX_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for "/.s.PGSQL.65535"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot be set up or started; the message says what to do."""


def find_pg_bin_dir(root: Path = DEBIAN_PG_ROOT) -> Path | None:
    """The newest `<root>/<major>/bin` that has `initdb`, `pg_ctl` and `postgres`, or None."""
    candidates: list[tuple[tuple[int, ...], Path]] = []
    if not root.is_dir():
        return None
    for child in root.iterdir():
        b = child / "bin"
        if not all((b / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            continue
        try:
            version = tuple(int(p) for p in child.name.split("."))
        except ValueError:
            continue
        candidates.append((version, b))
    return max(candidates)[1] if candidates else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Bind-to-0-then-release has a window in which another process can take the port; `start()`
    therefore retries with a fresh port when the server fails to bind.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unreachable_ancestor(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first existing ancestor of `path` (itself included) that `uid` cannot search, if any."""
    for p in reversed([path, *path.parents]):
        if not p.exists():
            break
        st = p.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return p
    return None


class EmbeddedPostgres:
    """A PostgreSQL server whose cluster lives in `data_dir`, started on demand and reused.

    `start()` returns the DSN (`postgresql://postgres@127.0.0.1:PORT/recon`); it initialises the
    cluster on first use and creates the database. Used as a context manager it stops the server
    on exit only if this object started it, so a `with` block never kills a server that another
    process is using. A reused server keeps the settings it was started with (`durable`, port).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        dbname: str = DEFAULT_DBNAME,
        bin_dir: Path | None = None,
        start_timeout_s: int = 60,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.requested_port = port
        self.durable = durable
        self.dbname = dbname
        self.start_timeout_s = start_timeout_s
        self._bin_dir = bin_dir
        self._dsn: str | None = None
        self._started_here = False
        self._pgserver: Any = None

    # -- files next to the data dir -------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        """Where the server's DSN and port are recorded (no secret in it: trust auth).

        `{"dsn": ..., "running": true, "port": ...}`; after `stop()` the DSN is null and the
        port is kept for the next start.
        """
        return self.data_dir.parent / f"{self.data_dir.name}.json"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def _lock_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.lock"

    @property
    def _socket_dir(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.sock"

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            raise EmbeddedPostgresError("the embedded Postgres is not started: call start() first")
        return self._dsn

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        """Start the server (or reuse the one already running on this data dir); return its DSN."""
        if self._dsn is not None and self.is_running():
            return self._dsn
        bin_dir = self._bin_dir or find_pg_bin_dir()
        if bin_dir is None:
            return self._start_pgserver()
        self._bin_dir = bin_dir
        self._check_reachable()  # before creating anything
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            running_port = self._running_port()
            if running_port is not None:
                self._dsn = self._make_dsn(running_port)
                self._started_here = False
                log.info(
                    "reusing the embedded Postgres on port %s (%s)", running_port, self.data_dir
                )
            else:
                if not (self.data_dir / "PG_VERSION").exists():
                    self._initdb()
                port = self._start_server()
                self._dsn = self._make_dsn(port)
                self._started_here = True
            self._ensure_database(self._dsn.rsplit("/", 1)[0] + "/postgres")
            self._write_state()
        return self._dsn

    def stop(self) -> None:
        """Stop the server (fast shutdown: running transactions are rolled back) if it runs."""
        if self._pgserver is not None:  # best effort: pgserver decides what cleanup() does
            self._pgserver.cleanup()
            self._pgserver, self._dsn = None, None
            return
        if self._bin_dir is None:
            self._bin_dir = find_pg_bin_dir()
        if self._bin_dir is None or not self.data_dir.parent.exists():
            self._dsn = None
            return
        with self._locked():
            port = self._running_port()
            if port is not None:
                self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(self.start_timeout_s))
                # Keep the port (not the DSN: nothing listens there now) so the next start
                # reuses it and DSNs saved in a SQL client keep working.
                self._write_state(port=port, dsn=None)
        self._dsn = None
        self._started_here = False

    def is_running(self) -> bool:
        """Whether a server runs on this data dir (`pg_ctl status`)."""
        if self._pgserver is not None:
            return True
        if self._bin_dir is None:
            self._bin_dir = find_pg_bin_dir()
        return self._bin_dir is not None and self._running_port() is not None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._started_here:
            self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(data_dir={str(self.data_dir)!r}, dsn={self._dsn!r})"

    # -- internals ------------------------------------------------------------------------------
    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _cmd(self, exe: str, *args: str) -> list[str]:
        assert self._bin_dir is not None
        cmd = [str(self._bin_dir / exe), *args]
        if self._as_root:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise EmbeddedPostgresError(
                    "running as root but `runuser` is missing: PostgreSQL refuses to run as root; "
                    "install util-linux or run as an unprivileged user"
                )
            cmd = [runuser, "-u", SERVICE_USER, "--", *cmd]
        return cmd

    def _run(self, cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise EmbeddedPostgresError(
                f"{Path(cmd[4] if self._as_root else cmd[0]).name} failed "
                f"(exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(self._cmd("pg_ctl", "-D", str(self.data_dir), *args), check=check)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_file, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _service_ids(self) -> tuple[int, set[int]]:
        try:
            pw = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise EmbeddedPostgresError(
                f"running as root needs the unprivileged `{SERVICE_USER}` user that Debian's "
                "postgresql package creates (apt-get install postgresql), or run as a normal user"
            ) from None
        gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if SERVICE_USER in g.gr_mem}
        return pw.pw_uid, gids

    def _check_reachable(self) -> None:
        """As root: the `postgres` user must be able to reach the data dir's parent folder."""
        if not self._as_root:
            return
        uid, gids = self._service_ids()
        blocked = _unreachable_ancestor(self.data_dir.parent, uid, gids)
        if blocked is not None:
            raise EmbeddedPostgresError(
                f"the `{SERVICE_USER}` user (uid {uid}) cannot reach {self.data_dir}: the folder "
                f"{blocked} is not searchable by it. Put the data dir under a folder it can "
                f"traverse (e.g. RECON_HOME=/srv/recon), or allow traversal with "
                f"`chmod o+x {shlex.quote(str(blocked))}`. Nothing was changed."
            )

    def _own(self, path: Path) -> None:
        if self._as_root:
            uid, _ = self._service_ids()
            os.chown(path, uid, pwd.getpwuid(uid).pw_gid)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if any(self.data_dir.iterdir()):
            raise EmbeddedPostgresError(
                f"{self.data_dir} is not empty and holds no PostgreSQL cluster (no PG_VERSION): "
                "refusing to initialise over it"
            )
        self.data_dir.chmod(0o700)
        self._own(self.data_dir)
        log.info("initialising a PostgreSQL cluster in %s", self.data_dir)
        self._run(
            self._cmd(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            )
        )

    def _server_options(self, port: int) -> str:
        opts = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            str(port),
            "-c",
            "TimeZone=UTC",
            "-c",
            f"unix_socket_directories={self._socket_dir_setting()}",
        ]
        if not self.durable:
            # Tests only: a crash may lose or corrupt this cluster, which is thrown away anyway.
            opts += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        # pg_ctl hands this string to /bin/sh: quote every token.
        return " ".join(shlex.quote(o) for o in opts)

    def _socket_dir_setting(self) -> str:
        """A Unix socket next to the data dir when its path fits in sun_path, else none (TCP)."""
        if len(str(self._socket_dir)) > _UNIX_SOCKET_PATH_MAX:
            return ""
        self._socket_dir.mkdir(exist_ok=True)
        self._own(self._socket_dir)
        return str(self._socket_dir)

    def _start_server(self) -> int:
        self.log_file.touch()
        self._own(self.log_file)
        last_error = ""
        for attempt in range(_START_ATTEMPTS):
            port = self.requested_port or (self._recorded_port() if attempt == 0 else None)
            port = port or free_port()
            size_before = self.log_file.stat().st_size
            proc = self._pg_ctl(
                "start",
                "-w",
                "-t",
                str(self.start_timeout_s),
                "-l",
                str(self.log_file),
                "-o",
                self._server_options(port),
                check=False,
            )
            if proc.returncode == 0:
                log.info("embedded Postgres started on 127.0.0.1:%s (%s)", port, self.data_dir)
                return port
            with open(self.log_file, errors="replace") as fh:
                fh.seek(size_before)
                server_log = fh.read()
            last_error = (server_log or proc.stderr or proc.stdout).strip()[-2000:]
            port_taken = re.search(r"could not bind|Address already in use", server_log)
            if self.requested_port is not None or not port_taken:
                break
            log.info("port %s was taken before Postgres could bind it; retrying", port)
            time.sleep(0.1 * (attempt + 1))
        raise EmbeddedPostgresError(
            f"PostgreSQL did not start on {self.data_dir} (log: {self.log_file}): {last_error}"
        )

    def _running_port(self) -> int | None:
        """The port of the server running on this data dir, or None if none runs."""
        if not (self.data_dir / "PG_VERSION").exists():
            return None
        if self._pg_ctl("status", check=False).returncode != 0:
            return None
        try:  # postmaster.pid line 4 is the port (we are its owner, or root)
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return self._recorded_port()

    def _recorded_port(self) -> int | None:
        try:
            return int(json.loads(self.state_file.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _make_dsn(self, port: int) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{self.dbname}"

    def _write_state(self, port: int | None = None, dsn: str | None = None) -> None:
        """Record the DSN (None when stopped) and port atomically next to the data dir."""
        if port is None:
            assert self._dsn is not None
            dsn = self._dsn
            port = int(dsn.rsplit(":", 1)[1].split("/", 1)[0])
        state = {
            "dsn": dsn,
            "running": dsn is not None,
            "port": port,
            "data_dir": str(self.data_dir),
            "bin_dir": str(self._bin_dir),
            "log_file": str(self.log_file),
        }
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_file)

    def _ensure_database(self, admin_dsn: str) -> None:
        """Create `self.dbname` if missing (connected to the maintenance database)."""
        import psycopg  # imported here: nothing heavy at module import
        from psycopg import sql

        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))

    def _start_pgserver(self) -> str:
        """Fallback when the machine has no PostgreSQL binaries: the `pgserver` pip package."""
        try:
            import pgserver  # type: ignore[import-not-found]
        except ImportError:
            raise EmbeddedPostgresError(
                f"no PostgreSQL binaries found in {DEBIAN_PG_ROOT}/*/bin and the `pgserver` "
                "package is not installed. Install one: `apt-get install postgresql` (preferred), "
                "or the project's `embedded-pg` extra (`uv pip install -e '.[embedded-pg]'`), or "
                "set RECON_LEDGER_DSN to an existing server."
            ) from None
        log.warning(
            "no system PostgreSQL: using pgserver (Unix socket only; as root it changes "
            "permissions on the data dir's parents)"
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: leave it running for other processes, like pg_ctl's server.
        self._pgserver = pgserver.get_server(self.data_dir, cleanup_mode=None)
        self._ensure_database(str(self._pgserver.get_uri()))
        self._dsn = str(self._pgserver.get_uri(self.dbname))
        self._started_here = True
        return self._dsn


def ledger_dsn(settings: ReconSettings) -> str:
    """The ledger DSN for these settings.

    An explicit `RECON_LEDGER_DSN` always wins, in every mode (so local mode can point at a
    shared dev database). Otherwise local mode starts, or reuses, the embedded server under
    `settings.home / "postgres"`; production without a DSN is a configuration error.
    """
    if settings.ledger_dsn:
        return settings.ledger_dsn
    if not settings.is_local:
        raise ConfigError("RECON_LEDGER_DSN is required when RECON_ENV=prod")
    return embedded_postgres(settings).start()


def embedded_postgres(settings: ReconSettings) -> EmbeddedPostgres:
    """The embedded server under `settings.home`: the one ledger recon may write to."""
    return EmbeddedPostgres(settings.home / "postgres" / "data")

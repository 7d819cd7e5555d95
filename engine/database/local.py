"""The embedded default database: a throwaway local PostgreSQL cluster.

Input: a base directory (the CLI uses ./.rulesctl) and the machine's PostgreSQL server
binaries. Output: a server listening on 127.0.0.1 only, and its URL
``postgresql://postgres@127.0.0.1:PORT/rulesctl``.

Layout under the base directory: ``data/`` (PGDATA, mode 0700), ``run/`` (unix socket),
``server.log``. Our settings live in ``data/rulesctl.conf`` (included from postgresql.conf and
rewritten on every start); the port chosen at init is read back from there, so it never changes.

Only the standard library is used here, so a bare system python can run this module.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.errors import LocalClusterError

SUPERUSER = "postgres"
CONFIG_NAME = "rulesctl.conf"
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the trailing NUL
START_TIMEOUT = 60  # seconds pg_ctl waits for start/stop


def find_pg_bindir() -> Path:
    """Directory holding initdb, pg_ctl and postgres."""
    if pg_config := shutil.which("pg_config"):
        bindir = _output(pg_config, "--bindir")
        if bindir and (Path(bindir) / "initdb").is_file():
            return Path(bindir)
    if initdb := shutil.which("initdb"):
        # Resolve symlinks such as /usr/local/bin/initdb so the sibling lib/ dir is the real one.
        return Path(initdb).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version_key)
    if debian:
        return debian[-1].parent
    raise LocalClusterError(
        "PostgreSQL server binaries not found; install postgresql-15 "
        "(scripts/install-system-packages.sh does it on Debian) or put pg_config on PATH"
    )


def _output(*cmd: str | Path) -> str:
    """stdout of a quick query command, stripped; "" when it cannot run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def _version_key(initdb: Path) -> tuple[int, ...]:
    name = initdb.parent.parent.name  # /usr/lib/postgresql/<version>/bin/initdb
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@dataclass(frozen=True)
class ClusterStatus:
    running: bool
    url: str | None  # None until the cluster has been initialised
    data_dir: Path
    port: int | None
    pid: int | None
    pg_cron_available: bool
    server_version: str | None


class LocalCluster:
    """A cluster under base_dir; every method may be called in any state (idempotent)."""

    def __init__(self, base_dir: Path, dbname: str = "rulesctl", bindir: Path | None = None,
                 settings: dict[str, str] | None = None, pg_cron: bool = True, durable: bool = True):
        """settings: extra server settings, written after (and winning over) ours; pg_cron=False
        leaves pg_cron out even where it is installed (a cluster that schedules nothing);
        durable=False for data nobody keeps: initdb skips flushing its files to disk."""
        # Absolute: the server chdirs into PGDATA, so relative paths would break.
        self.base_dir = Path(base_dir).absolute()
        self.dbname = dbname
        self.settings = dict(settings or {})
        self.pg_cron = pg_cron
        self.durable = durable
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "run"
        self.log_file = self.base_dir / "server.log"
        self._bindir = bindir

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        """URL of another database on this cluster (e.g. "postgres" for admin work)."""
        port = self._port()
        if port is None:
            raise LocalClusterError(f"no local database in {self.base_dir} yet: start it first")
        return self._url(port, dbname)

    def start(self) -> str:
        """Initialise if needed, start if not running, create the app database; return its URL."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._init()
        if self._pid() is None:
            port = self._port() or _free_port()  # or rulesctl.conf was deleted by hand
            self._write_config(port)
            _check_port_free(port, self.base_dir)
            self._run(
                [self._bin("pg_ctl"), "start", "-D", self.data_dir, "-l", self.log_file,
                 "-w", "-t", str(START_TIMEOUT)],
                "could not start the local PostgreSQL server", as_server=True,
            )
        self._create_app_database()
        return self.url

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Fast shutdown (disconnects clients), or "immediate" for data about to be deleted (no
        shutdown checkpoint); nothing to do when it is not running."""
        if self._pid() is None:
            return
        self._run(
            [self._bin("pg_ctl"), "stop", "-D", self.data_dir, "-m", mode,
             "-w", "-t", str(START_TIMEOUT)],
            "could not stop the local PostgreSQL server", as_server=True,
        )

    def status(self) -> ClusterStatus:
        port = self._port()
        pid = self._pid()
        return ClusterStatus(
            running=pid is not None,
            url=None if port is None else self._url(port, self.dbname),
            data_dir=self.data_dir,
            port=port,
            pid=pid,
            pg_cron_available=self._has_library("pg_cron"),
            server_version=self._server_version(),
        )

    def destroy(self) -> None:
        """Stop and delete everything under base_dir (for tests and `reset`)."""
        if self.base_dir.exists():
            self.stop()
            shutil.rmtree(self.base_dir)

    def _init(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.log_file.touch()
        user = self._server_user()
        if user is not None:
            for path in (self.data_dir, self.socket_dir, self.log_file):
                shutil.chown(path, user.pw_uid, user.pw_gid)
            _make_traversable(self.base_dir)
        self._run(
            [self._bin("initdb"), "-D", self.data_dir, "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8", *([] if self.durable else ["--no-sync"])],
            "initdb failed", as_server=True,
        )
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(f"\ninclude = '{CONFIG_NAME}'\n")
        self._write_config(_free_port())

    def _write_config(self, port: int) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{self._socket_dir_setting(port)}'",
            "max_connections": "200",
            "jit": "off",
            # Realtime tests read changes through wal2json.
            "wal_level": "logical",
            "max_replication_slots": "10",
            "max_wal_senders": "10",
        }
        if self.pg_cron and self._has_library("pg_cron"):
            settings["shared_preload_libraries"] = "'pg_cron'"
            settings["cron.database_name"] = f"'{self.dbname}'"
            settings["cron.host"] = "'127.0.0.1'"  # job connections: "localhost" may try ::1 first
        if self._has_library("wal2json") and self._knows_setting("output_plugin_libraries"):
            # 15.19+ (CVE-2026-6471) only lets listed plugins decode, superusers included.
            settings["output_plugin_libraries"] = "'pgoutput, test_decoding, wal2json'"
        settings.update(self.settings)
        text = "# written by rulesctl (engine/database/local.py) on every start; edits are lost\n"
        text += "".join(f"{key} = {value}\n" for key, value in settings.items())
        path = self.data_dir / CONFIG_NAME
        path.write_text(text)
        if (user := self._server_user()) is not None:
            shutil.chown(path, user.pw_uid, user.pw_gid)

    def _socket_dir_setting(self, port: int) -> str:
        # A too-long socket path makes the server refuse to start; TCP is all we need anyway.
        socket_path = f"{self.socket_dir}/.s.PGSQL.{port}"
        return str(self.socket_dir) if len(socket_path.encode()) <= SOCKET_PATH_MAX else ""

    def _create_app_database(self) -> None:
        script = (
            "SELECT format('CREATE DATABASE %I', :'db')\n"
            "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec\n"
        )
        self._run(
            [self._bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"db={self.dbname}",
             "-d", self.url_for("postgres")],
            f"could not create database {self.dbname!r}", stdin=script,
        )

    def _port(self) -> int | None:
        try:
            text = (self.data_dir / CONFIG_NAME).read_text()
        except OSError:
            return None
        match = re.search(r"^port = (\d+)$", text, re.MULTILINE)
        return int(match.group(1)) if match else None

    def _pid(self) -> int | None:
        """The postmaster's pid when it is running (a stale postmaster.pid does not count)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by another user
        return pid

    def _server_user(self) -> pwd.struct_passwd | None:
        """The OS user the server runs as: None means ourselves (we are not root)."""
        if os.geteuid() != 0:
            return None
        if self.data_dir.exists() and self.data_dir.stat().st_uid != 0:
            return pwd.getpwuid(self.data_dir.stat().st_uid)  # keep whoever initialised it
        for name in ("postgres", "rulesctl"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                pass
        self._run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "rulesctl"],
            "could not create the system user 'rulesctl' to run PostgreSQL as",
        )
        return pwd.getpwnam("rulesctl")

    def _bin(self, name: str) -> str:
        if self._bindir is None:
            self._bindir = find_pg_bindir()
        return str(self._bindir / name)

    def _has_library(self, name: str) -> bool:
        pg_config = Path(self._bin("pg_config"))
        libdir = _output(pg_config, "--pkglibdir") or pg_config.parent.parent / "lib"
        return (Path(libdir) / f"{name}.so").exists()

    def _knows_setting(self, name: str) -> bool:
        # An unknown name in postgresql.conf stops the server, so ask the binary first.
        described = _output(self._bin("postgres"), "--describe-config").splitlines()
        return any(line.split("\t", 1)[0] == name for line in described)

    def _server_version(self) -> str | None:
        match = re.search(r"\(PostgreSQL\) (\S+)", _output(self._bin("postgres"), "--version"))
        return match.group(1) if match else None

    @staticmethod
    def _url(port: int, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{dbname}"

    def _run(self, cmd: list, what: str, *, as_server: bool = False, stdin: str | None = None) -> None:
        cmd = [str(part) for part in cmd]
        if as_server and (user := self._server_user()) is not None:
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            cmd = [runuser, "-u", user.pw_name, "--", *cmd]  # PostgreSQL refuses to run as root
        # Ambient PG* variables (PGHOST, PGOPTIONS...) must not redirect or alter our commands.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"  # English messages in errors
        try:
            done = subprocess.run(
                cmd, cwd=self.base_dir, env=env, input=stdin, capture_output=True, text=True,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except OSError as exc:
            raise LocalClusterError(f"{what}: {exc}") from None
        if done.returncode != 0:
            output = (done.stderr.strip() or done.stdout.strip())[-2000:]
            raise LocalClusterError(f"{what} (exit {done.returncode}): {output}{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"\nlast lines of {self.log_file}:\n" + "\n".join(tail) if tail else ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_port_free(port: int, base_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The server sets SO_REUSEADDR too: a recently closed port in TIME_WAIT is fine.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LocalClusterError(
                f"port {port} on 127.0.0.1 is in use by another program ({exc.strerror}); "
                f"stop it, or remove {base_dir} to start afresh on a new port"
            ) from None


def _make_traversable(path: Path) -> None:
    """Let the server's OS user reach base_dir: add search (not read) permission for others."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)

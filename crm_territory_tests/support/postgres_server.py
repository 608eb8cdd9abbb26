"""Start a throw-away PostgreSQL server for tests: ``with run_postgres() as pg``.

The server is a real ``postgres`` process from the machine's PostgreSQL binaries
(``initdb``, ``pg_ctl``, ``postgres`` on ``PATH``): a fresh cluster in a
temporary directory, listening on 127.0.0.1 and a free port (its Unix socket
in the same directory, never in /var/run), with one database owned by one
login role that has a password. The postmaster is a child of this process (not
daemonised), so it is always stopped (``pg_ctl stop -m fast``, then reaped; a
signal to its pid as the fallback) and the directory removed on exit, whatever
happened inside the block. Usage::

    from crm_territory_tests.support.postgres_server import run_postgres

    with run_postgres() as pg:
        psycopg2.connect(pg.dsn)
        os.environ.update(pg.dagster_env())   # DAGSTER_PG_HOST, _PORT, _USERNAME, _PASSWORD, _DB

PostgreSQL refuses to run as root, and tests run as root in CI. As root, the
cluster belongs to an unprivileged account -- ``postgres`` if the machine has
one, else ``nobody``, else a system account created for the purpose -- and
``initdb``, ``postgres`` and ``pg_ctl`` run under it (``subprocess`` drops to its
uid/gid with no supplementary groups; the temporary directory is created where
that account can reach it and is private to it). As any other user they simply
run as that user.

Every wait is bounded; a failure raises ``PostgresServerError`` with the
command's output and the tail of the server log.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "PostgresServerError", "run_postgres"]

_BINARIES = ("initdb", "pg_ctl", "postgres")
_SUPERUSER = "postgres"  # the cluster's bootstrap superuser; reachable only over the private socket
_FALLBACK_ACCOUNT = "crm-pg-test"  # created (system account) only if neither postgres nor nobody exists


class PostgresServerError(RuntimeError):
    """The test PostgreSQL server could not be set up, started or reached."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db_name: str
    data_dir: Path
    socket_dir: Path
    log_path: Path

    @property
    def dsn(self) -> str:
        """A libpq DSN over TCP with password authentication (what a client elsewhere would use)."""
        return (
            f"host={self.host} port={self.port} dbname={self.db_name} user={self.user} password={self.password} connect_timeout=5"
        )

    def dagster_env(self) -> dict[str, str]:
        """The variables infra/dagster.yaml reads its connection from."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db_name,
        }

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def _find_binaries() -> dict[str, str]:
    found = {name: shutil.which(name) for name in _BINARIES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise PostgresServerError(
            f"PostgreSQL server binaries not found on PATH: {', '.join(missing)}. "
            "Every machine of this project has initdb, pg_ctl and postgres (in /usr/local/bin); "
            f"install PostgreSQL or put its bin directory on PATH (PATH={os.environ.get('PATH', '')})."
        )
    return found  # type: ignore[return-value]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class _Account:
    """Who runs initdb/pg_ctl: ``None`` uid means 'the current user, no switch'."""

    uid: int | None
    gid: int | None
    name: str

    def subprocess_kwargs(self) -> dict:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _server_account() -> _Account:
    if os.geteuid() != 0:
        return _Account(None, None, pwd.getpwuid(os.geteuid()).pw_name)
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return _Account(entry.pw_uid, entry.pw_gid, name)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise PostgresServerError(
            "running as root, and there is no unprivileged account (postgres, nobody) to run PostgreSQL "
            "under, nor useradd to create one"
        )
    proc = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _FALLBACK_ACCOUNT],
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        entry = pwd.getpwnam(_FALLBACK_ACCOUNT)
    except KeyError:
        raise PostgresServerError(f"could not create the system account {_FALLBACK_ACCOUNT}: {proc.stderr.strip()}") from None
    return _Account(entry.pw_uid, entry.pw_gid, _FALLBACK_ACCOUNT)


def _world_traversable(path: Path) -> bool:
    """True if every directory from / down to ``path`` lets other users through (o+x)."""
    for part in [path, *path.parents]:
        try:
            if not os.stat(part).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _make_base_dir(account: _Account) -> Path:
    """A private temporary directory the server account owns and can reach."""
    if account.uid is None:
        return Path(tempfile.mkdtemp(prefix="crm-pg-"))
    # pytest's tmp_path (/tmp/pytest-of-root, 0700) is out of reach for another user: pick a base
    # every user can walk through, then make our own directory private to the server account.
    candidates = [Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")]
    for base in candidates:
        if base.is_dir() and _world_traversable(base.resolve()):
            root = Path(tempfile.mkdtemp(prefix="crm-pg-", dir=base))
            os.chown(root, account.uid, account.gid)
            os.chmod(root, 0o700)
            return root
    raise PostgresServerError(
        f"no temporary directory that the account {account.name!r} can reach among {', '.join(map(str, candidates))}"
    )


def _clean_env(root: Path) -> dict[str, str]:
    # No inherited PG* variable (PGHOST, PGDATA, PGPORT...) may redirect the tools; a HOME the
    # server account can read; the C locale so initdb never depends on the machine's locales.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"HOME": str(root), "LC_ALL": "C", "LANG": "C"})
    return env


def _run(cmd: list[str], *, account: _Account, root: Path, timeout: float, what: str, log: Path | None = None) -> None:
    try:
        proc = subprocess.run(
            cmd,
            cwd=root,
            env=_clean_env(root),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            **account.subprocess_kwargs(),
        )
    except subprocess.TimeoutExpired as exc:
        raise PostgresServerError(
            f"{what} did not finish within {timeout:.0f}s: {' '.join(cmd)}"
            + (f"\nserver log (tail):\n{_tail(log)}" if log else "")
        ) from exc
    if proc.returncode != 0:
        raise PostgresServerError(
            f"{what} failed (exit {proc.returncode}, as {account.name}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}".rstrip()
            + (f"\nserver log (tail):\n{_tail(log)}" if log else "")
        )


def _write_config(data_dir: Path, *, port: int, socket_dir: Path) -> None:
    # Appended settings override initdb's defaults (last one wins). Durability is irrelevant for a
    # throw-away cluster, so skip fsyncs: it makes schema creation several times faster.
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "100",
    }
    with open(data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("\n# crm_territory_tests.support.postgres_server\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())


def _connect(**kwargs):
    import psycopg2  # the venv's psycopg2-binary (dagster-postgres' driver)

    return psycopg2.connect(connect_timeout=5, **kwargs)


def _wait_accepting(server: PostgresServer, deadline: float) -> None:
    """Until the role can log in over TCP with its password; bounded by ``deadline``."""
    import psycopg2

    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            conn = _connect(host=server.host, port=server.port, dbname=server.db_name, user=server.user, password=server.password)
        except psycopg2.OperationalError as exc:
            last_error = exc
            time.sleep(0.1)
            continue
        conn.close()
        return
    raise PostgresServerError(
        f"PostgreSQL on {server.host}:{server.port} did not accept connections as {server.user!r} in time: "
        f"{last_error}\nserver log (tail):\n{server.log_tail()}"
    )


def _create_role_and_db(socket_dir: Path, port: int, *, user: str, password: str, db_name: str) -> None:
    from psycopg2 import sql

    # Over the private Unix socket as the bootstrap superuser (trust is limited to that socket,
    # whose directory only the server account and root can enter).
    conn = _connect(host=str(socket_dir), port=port, dbname="postgres", user=_SUPERUSER)
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(user)), (password,))
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db_name), sql.Identifier(user)))
    finally:
        conn.close()


def _stop(pg_ctl: str, data_dir: Path, proc: subprocess.Popen, *, account: _Account, root: Path) -> None:
    """``pg_ctl stop -m fast``, then reap the postmaster; if that fails, signal the postmaster we started."""
    if proc.poll() is None:
        try:
            _run(
                [pg_ctl, "stop", "-D", str(data_dir), "-m", "fast", "-w", "-t", "30"],
                account=account,
                root=root,
                timeout=45,
                what="pg_ctl stop",
            )
        except PostgresServerError:
            pass
    for sig in (None, signal.SIGQUIT, signal.SIGKILL):
        if sig is not None and proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def run_postgres(
    *,
    db_name: str = "dagster",
    user: str = "dagster",
    password: str | None = None,
    start_timeout: float = 60.0,
) -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster on 127.0.0.1:<free port> with ``db_name`` owned by ``user``.

    ``password`` defaults to a random one. Yields a ``PostgresServer`` (``dsn``, ``dagster_env()``).
    """
    binaries = _find_binaries()
    account = _server_account()
    password = password or secrets.token_urlsafe(18)
    root = _make_base_dir(account)
    data_dir, socket_dir, log_path = root / "data", root / "sock", root / "server.log"
    procs: list[subprocess.Popen] = []
    try:
        try:
            server = _start(
                binaries,
                account,
                root,
                data_dir,
                socket_dir,
                log_path,
                procs,
                db_name=db_name,
                user=user,
                password=password,
                start_timeout=start_timeout,
            )
        except PostgresServerError:
            raise
        except Exception as exc:  # psycopg2 errors and the like: say where the server stands
            raise PostgresServerError(f"{type(exc).__name__}: {exc}\nserver log (tail):\n{_tail(log_path)}") from exc
        yield server
    finally:
        try:
            for proc in procs:
                _stop(binaries["pg_ctl"], data_dir, proc, account=account, root=root)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _start_postmaster(postgres: str, data_dir: Path, log_path: Path, *, account: _Account, root: Path) -> subprocess.Popen:
    # The postmaster runs as our child (not daemonised by pg_ctl start), so we always know its pid
    # and reap it on exit; its output goes to the log file.
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [postgres, "-D", str(data_dir)],
            cwd=root,
            env=_clean_env(root),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, and we stop the server ourselves
            **account.subprocess_kwargs(),
        )


def _wait_superuser_socket(proc: subprocess.Popen, socket_dir: Path, port: int, log_path: Path, deadline: float) -> bool:
    """True once the server accepts a connection on its socket; False if it exited (e.g. port taken)."""
    import psycopg2

    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            _connect(host=str(socket_dir), port=port, dbname="postgres", user=_SUPERUSER).close()
            return True
        except psycopg2.OperationalError as exc:
            last_error = exc
            time.sleep(0.1)
    raise PostgresServerError(
        f"PostgreSQL did not accept connections within the start timeout: {last_error}\nserver log (tail):\n{_tail(log_path)}"
    )


def _start(
    binaries, account, root, data_dir, socket_dir, log_path, procs, *, db_name, user, password, start_timeout
) -> PostgresServer:
    socket_dir.mkdir(mode=0o700)
    if account.uid is not None:
        os.chown(socket_dir, account.uid, account.gid)
    _run(
        [
            binaries["initdb"],
            "-D",
            str(data_dir),
            "-U",
            _SUPERUSER,
            "--encoding=UTF8",
            "--no-locale",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ],
        account=account,
        root=root,
        timeout=120,
        what="initdb",
    )
    deadline = time.monotonic() + start_timeout
    attempts = 0
    while True:
        attempts += 1
        port = _free_port()
        _write_config(data_dir, port=port, socket_dir=socket_dir)
        proc = _start_postmaster(binaries["postgres"], data_dir, log_path, account=account, root=root)
        procs.append(proc)
        if _wait_superuser_socket(proc, socket_dir, port, log_path, deadline):
            break
        procs.remove(proc)
        proc.wait(timeout=15)
        # Another process can take the port between _free_port() and the bind: worth another try.
        if "could not bind" in _tail(log_path, 20) and attempts < 3 and time.monotonic() < deadline:
            continue
        raise PostgresServerError(
            f"postgres exited during start-up (exit {proc.returncode}, as {account.name}).\nserver log (tail):\n{_tail(log_path)}"
        )
    _create_role_and_db(socket_dir, port, user=user, password=password, db_name=db_name)
    server = PostgresServer(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        db_name=db_name,
        data_dir=data_dir,
        socket_dir=socket_dir,
        log_path=log_path,
    )
    _wait_accepting(server, deadline)
    return server

"""A throwaway PostgreSQL cluster in a temporary folder (initdb + pg_ctl, about a second), for
the PostgreSQL half of the tests. As root, the server runs as the `postgres` user (PostgreSQL
refuses to run as root), which owns the folder."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or where Debian's packages put them."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(f"{folder}/initdb", os.X_OK) and os.access(f"{folder}/pg_ctl", os.X_OK):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="crm-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = _free_port()
        self._user = None
        if os.geteuid() == 0:
            import pwd

            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("PostgreSQL refuses to run as root and there is no postgres"
                                   " user (Debian's postgresql package makes one)") from None
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)

    def _run(self, *args: str) -> None:
        def demote():
            if self._user:
                os.setgid(self._user.pw_gid)
                os.setuid(self._user.pw_uid)

        done = subprocess.run([str(a) for a in args], preexec_fn=demote, cwd=self.dir,
                              capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip()}"
                               f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n" + "\n".join(self.log.read_text().splitlines()[-5:])
        except OSError:
            return ""

    def start(self) -> "Cluster":
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        # a test server: durability off, reachable only on loopback and its own socket folder
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w",
                  "-t", "60", "start")
        return self

    def url(self, database: str = "postgres", user: str = "postgres",
            password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def allow_password_login(self, user: str) -> None:
        """Password checks for user over TCP (everyone else stays trusted)."""
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        self._run(self.bin / "pg_ctl", "-D", self.data, "reload")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():  # a test may have stopped it already
                self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

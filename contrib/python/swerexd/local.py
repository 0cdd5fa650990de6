"""local(): a private swerexd on a temporary socket, for one program's use.

    with swerexd.local() as runtime:          # a SyncRuntime
        runtime.execute(Command(["true"]))
    async with swerexd.local() as runtime:    # a Runtime
        await runtime.execute(Command(["true"]))

The daemon is found as $SWEREXD, else `swerexd` on PATH, else in the build
tree this package sits in. It listens on a socket in a fresh temporary
directory, gets a private HOME there by default (so no ~/.bashrc of the user
runs in its sessions), and is waited for through --ready-fd: no polling. On
exit it is stopped by its pid (SIGTERM, which ends every session's processes;
SIGKILL if it has not exited within stop_timeout) and the directory removed.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Optional, Sequence

from . import exceptions as exc
from .runtime import Runtime
from .sync import SyncRuntime

__all__ = ["local", "LocalDaemon", "find_swerexd"]


def find_swerexd() -> str:
    """Find the daemon: $SWEREXD, else PATH, else the build tree."""
    env = os.environ.get("SWEREXD")
    if env:
        return env
    found = shutil.which("swerexd")
    if found:
        return found
    here = Path(__file__).resolve().parent
    # build/contrib/python/swerexd -> build/daemon; contrib/python/swerexd
    # in the source tree -> build/daemon beside it.
    for cand in (here.parents[2] / "daemon" / "swerexd",
                 here.parents[2] / "build" / "daemon" / "swerexd"):
        if os.access(cand, os.X_OK):
            return str(cand)
    raise FileNotFoundError("swerexd not found: set $SWEREXD, put it on PATH, or build it")


def _stop(pid: int, proc: subprocess.Popen, tmp: str, timeout: float,
          before_removal: Any = None) -> None:
    """Stop the daemon by pid and remove its directory (also at exit)."""
    if proc.returncode is None:
        try:
            os.kill(pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            proc.wait()
    if before_removal is not None:
        before_removal()
    shutil.rmtree(tmp, ignore_errors=True)


class LocalDaemon:
    """A private swerexd; a context manager, sync (SyncRuntime) or async
    (Runtime). start() and stop() may also be called by hand."""

    def __init__(self, binary: Optional[str] = None, *, home: Optional[str] = None,
                 args: Sequence[str] = (), env: Optional[dict[str, str]] = None,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0,
                 **runtime_kwargs: Any):
        self.binary = binary
        self.home = home
        self.args = list(args)
        self.env = env
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.runtime_kwargs = runtime_kwargs
        self.dir = ""
        self.socket = ""
        self.url = ""
        self.log = ""
        self.listen: list[str] = []     # every listener's address, real ports
        self.exit_log = ""              # its log's end, if it exited with an error
        self.proc: Optional[subprocess.Popen] = None
        self._finalizer: Any = None
        self._runtime: Any = None

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> str:
        """Start the daemon and wait until it serves; give its URL."""
        binary = self.binary or find_swerexd()
        # A short path: socket paths are limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="swerexd-", dir="/tmp")
        self.socket = os.path.join(self.dir, "swerexd.sock")
        self.url = "unix:" + self.socket
        self.log = os.path.join(self.dir, "swerexd.log")
        env = dict(os.environ if self.env is None else self.env)
        if self.home is None:
            env["HOME"] = os.path.join(self.dir, "home")
            os.mkdir(env["HOME"], 0o700)
        else:
            env["HOME"] = self.home
        r, w = os.pipe()
        try:
            with open(self.log, "wb") as log:
                self.proc = subprocess.Popen(
                    [binary, "--listen", self.url, "--ready-fd", str(w), *self.args],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    pass_fds=(w,), start_new_session=True)
        except BaseException:
            os.close(r)
            os.close(w)
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        os.close(w)
        self._finalizer = weakref.finalize(self, _stop, self.proc.pid, self.proc,
                                           self.dir, self.stop_timeout)
        try:
            self._wait_ready(r)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(r)
        return self.url

    def _wait_ready(self, fd: int) -> None:
        """Read the ready pipe until READY=1; the daemon closing it first
        (it failed to start) or the time running out raises."""
        got = b""
        end = time.monotonic() + self.start_timeout
        while b"READY=1\n" not in got:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise exc.SwerexConnectionError(
                    f"swerexd did not start within {self.start_timeout:g} s{self._log_tail()}")
            chunk = os.read(fd, 4096)
            if not chunk:
                status = self.proc.wait(self.stop_timeout) if self.proc else None
                raise exc.SwerexConnectionError(
                    f"swerexd exited during start-up (status {status}){self._log_tail()}")
            got += chunk
        self.listen = [line[7:].decode() for line in got.splitlines()
                       if line.startswith(b"LISTEN=")]

    def _log_tail(self) -> str:
        """Give the end of the daemon's log for an error message."""
        try:
            with open(self.log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 2000))
                tail = f.read().decode(errors="replace").strip()
        except OSError:
            return ""
        return f"; its log ends:\n{tail}" if tail else ""

    def stop(self) -> None:
        """Stop the daemon (by its pid) and remove its directory. If it did
        not exit with status 0, the end of its log is kept in self.exit_log."""
        if self._finalizer is None or not self._finalizer.alive:
            return
        _, _, (pid, proc, tmp, timeout), _ = self._finalizer.detach()
        self._finalizer = None
        _stop(pid, proc, tmp, timeout, lambda: self._keep_log(proc))

    def _keep_log(self, proc: subprocess.Popen) -> None:
        """Keep the log's end of a daemon that exited with an error."""
        if proc.returncode != 0:
            self.exit_log = self._log_tail()

    def __enter__(self) -> SyncRuntime:
        self.start()
        try:
            self._runtime = SyncRuntime(self.url, **self.runtime_kwargs)
            self._runtime.connect()
        except BaseException:
            if self._runtime is not None:
                self._runtime.close()
            self.stop()
            raise
        return self._runtime

    def __exit__(self, *a: Any) -> None:
        try:
            if self._runtime is not None:
                self._runtime.close()
                self._runtime = None
        finally:
            self.stop()

    async def __aenter__(self) -> Runtime:
        # Start-up blocks on the ready pipe: wait in a thread, not the loop.
        await asyncio.get_running_loop().run_in_executor(None, self.start)
        try:
            self._runtime = Runtime(self.url, **self.runtime_kwargs)
            await self._runtime.connect()
        except BaseException:
            if self._runtime is not None:
                await self._runtime.close()
            self.stop()
            raise
        return self._runtime

    async def __aexit__(self, *a: Any) -> None:
        try:
            if self._runtime is not None:
                await self._runtime.close()
                self._runtime = None
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self.stop)


def local(binary: Optional[str] = None, **kwargs: Any) -> LocalDaemon:
    """A private swerexd for a `with` or `async with` block (see LocalDaemon)."""
    return LocalDaemon(binary, **kwargs)

"""Runtime: SWE-ReX's AbstractRuntime methods over one swerexd connection.

Every method is a coroutine and any number may run at once (asyncio.gather
over hundreds of sessions): they share one connection and are matched to
their answers by request id. The connection opens on the first call (or
connect(), or `async with`).
"""

from __future__ import annotations

import asyncio
import codecs
import io
import logging
import math
from typing import Any, Optional, Union

from . import exceptions as exc
from . import swerex_pb2 as pb
from . import transfer
from .attach import _END, Attachment, input_bytes, stream_next
from .connection import Connection, command_response_from, decode, observation_from
from .models import (
    BashAction, BashInterruptAction, BashObservation, CloseBashSessionRequest,
    CloseBashSessionResponse, CloseResponse, Command, CommandResponse,
    CreateBashSessionRequest, CreateBashSessionResponse, DownloadRequest,
    DownloadResponse, IsAliveResponse, ReadFileRequest, ReadFileResponse,
    SessionInfo, UploadRequest, UploadResponse, WriteFileRequest,
    WriteFileResponse, ConnStats, HistogramBucket, History, HistoryEntry,
    Stats,
)

__all__ = ["Runtime", "Stream"]

_CHECK = {"raise": pb.CHECK_RAISE, "silent": pb.CHECK_SILENT, "ignore": pb.CHECK_IGNORE}
_STATE = {pb.SESSION_STATE_STARTING: "starting", pb.SESSION_STATE_IDLE: "idle",
          pb.SESSION_STATE_RUNNING: "running", pb.SESSION_STATE_DEAD: "dead"}


def _bash_action(action: BashAction, stream: bool = False) -> Any:
    """Build the wire's BashAction."""
    if action.check not in _CHECK:
        raise ValueError(f"check must be 'raise', 'silent' or 'ignore', not {action.check!r}")
    m = pb.BashAction(command=action.command, session=action.session,
                      is_interactive_command=action.is_interactive_command,
                      is_interactive_quit=action.is_interactive_quit,
                      check=_CHECK[action.check], error_msg=action.error_msg,
                      expect=list(action.expect), stream=stream)
    if action.timeout is not None:
        m.timeout = float(action.timeout)
    if action.max_output is not None:
        m.max_output = int(action.max_output)
    if action.no_output_timeout is not None:
        m.no_output_timeout = float(action.no_output_timeout)
    m.wait = action.wait
    return m


def _execute_request(command: Command, stream: bool = False) -> Any:
    """Build the wire's ExecuteRequest (subprocess.run's rules: a string
    needs shell=True, a list runs without a shell)."""
    m = pb.ExecuteRequest(shell=command.shell, check=command.check,
                          error_msg=command.error_msg,
                          merge_output_streams=command.merge_output_streams,
                          cwd=command.cwd or "", stream=stream)
    if command.shell:
        if not isinstance(command.command, str):
            raise ValueError("shell=True wants the command as one string")
        m.command = command.command
    elif isinstance(command.command, str):
        # subprocess.run("prog") runs the program named so, without a shell.
        m.argv.append(command.command)
    else:
        m.argv.extend(command.command)
    if command.env is not None:
        m.env.update(command.env)
        m.replace_env = True
    if command.timeout is not None:
        m.timeout = float(command.timeout)
    if command.stdin is not None:
        m.stdin = command.stdin.encode() if isinstance(command.stdin, str) else bytes(command.stdin)
    if command.max_output is not None:
        m.max_output = int(command.max_output)
    return m


def _read_text(data: bytes, encoding: Optional[str], errors: Optional[str]) -> str:
    """Decode a file's bytes exactly as Path.read_text() would (the locale's
    encoding by default, universal newlines)."""
    with io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors=errors) as f:
        return f.read()


class Runtime:
    """A swerexd client with SWE-ReX's AbstractRuntime interface.

    url: "unix:/path" or "/path", "tls://HOST:PORT", "tcp://HOST:PORT"
    (loopback, --insecure daemons); None: $SWEREX_URL, else the daemon's
    default socket. token (alias auth_token, SWE-ReX's name) or token_file:
    required by TCP listeners; default $SWEREX_TOKEN, else the file named by
    $SWEREX_TOKEN_FILE. ca, cert, key, server_name: TLS (defaults
    $SWEREX_CA, $SWEREX_CERT, $SWEREX_KEY, the URL's host). keepalive: ping
    after this many quiet seconds, give the connection up after twice as
    many (< 0: never). reconnect: on a lost connection, reconnect and resume
    pending requests (see connection.py).
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None,
                 ca: Optional[str] = None, *, cert: Optional[str] = None,
                 key: Optional[str] = None, server_name: Optional[str] = None,
                 token_file: Optional[str] = None, auth_token: Optional[str] = None,
                 client_name: str = "swerexd-python", connect_timeout: float = 10.0,
                 keepalive: float = 10.0, reconnect: bool = True,
                 reconnect_timeout: float = 30.0, logger: Optional[logging.Logger] = None):
        self.logger = logger or logging.getLogger("swerexd")
        self._conn = Connection(
            url, token=token if token is not None else auth_token, token_file=token_file,
            ca=ca, cert=cert, key=key, server_name=server_name, client_name=client_name,
            connect_timeout=connect_timeout, keepalive=keepalive, reconnect=reconnect,
            reconnect_timeout=reconnect_timeout)

    async def __aenter__(self) -> "Runtime":
        await self.connect()
        return self

    async def __aexit__(self, *a: Any) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect now rather than on the first call."""
        await self._conn.connect()

    @property
    def daemon_version(self) -> str:
        """The daemon's version from the handshake ("" before it)."""
        return self._conn.daemon_version

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established."""
        return self._conn.reconnects

    async def is_alive(self, *, timeout: Optional[float] = None) -> IsAliveResponse:
        """Ask whether the daemon answers; failures give is_alive=False and
        the reason in message instead of raising (as SWE-ReX does)."""
        try:
            r = await asyncio.wait_for(self._conn.request("is_alive", pb.IsAliveRequest()), timeout)
        except (exc.SwerexException, OSError, asyncio.TimeoutError, ValueError) as e:
            return IsAliveResponse(is_alive=False, message=str(e) or type(e).__name__)
        return IsAliveResponse(is_alive=r.is_alive, message=r.message)

    async def wait_until_alive(self, *, timeout: float = 60.0) -> None:
        """Wait until is_alive() answers yes, retrying; raise TimeoutError."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        delay = 0.05
        while True:
            r = await self.is_alive(timeout=max(0.01, end - loop.time()))
            if r:
                return
            if loop.time() + delay >= end:
                raise TimeoutError(f"swerexd not alive after {timeout:g} s: {r.message}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def create_session(self, request: CreateBashSessionRequest) -> CreateBashSessionResponse:
        """Start a bash session; SessionExistsError if the name is taken."""
        m = pb.CreateSessionRequest(session=request.session,
                                    startup_source=list(request.startup_source),
                                    rows=request.rows, cols=request.cols,
                                    env=dict(request.env), cwd=request.cwd,
                                    inherit_env=request.inherit_env)
        if request.startup_timeout is not None:
            m.startup_timeout = float(request.startup_timeout)
        if request.limits is not None:
            for f in ("cpu_seconds", "address_space", "nproc", "file_size", "memory", "pids"):
                v = getattr(request.limits, f)
                if v is not None:
                    setattr(m.limits, f, int(v))
        r = await self._conn.request("create_session", m)
        return CreateBashSessionResponse(output=decode(r.output))

    async def resize(self, session: str, rows: int, cols: int) -> None:
        """Set a session's terminal size (1 to 10000 each); the program in
        its foreground gets SIGWINCH. Allowed while a command runs."""
        await self._conn.request("resize", pb.ResizeRequest(session=session, rows=rows, cols=cols))

    async def run_in_session(self, action: Union[BashAction, BashInterruptAction]) -> BashObservation:
        """Run a command in a session, or interrupt what runs there.

        Raises NonZeroExitCodeError (check="raise"), CommandTimeoutError,
        BashIncorrectSyntaxError, SessionDoesNotExistError, SessionBusyError,
        ...; e.observation holds the output so far."""
        if isinstance(action, BashInterruptAction):
            m = pb.BashInterruptAction(session=action.session, expect=list(action.expect))
            if action.timeout is not None:
                m.timeout = float(action.timeout)
            if action.n_retry is not None:
                m.n_retry = int(action.n_retry)
            r = await self._conn.request("interrupt", m)
        else:
            r = await self._conn.request("run", _bash_action(action))
        return observation_from(r)

    def stream(self, action: Union[BashAction, Command]) -> "Stream":
        """Run a command and yield its output (str) as it is printed:
        `async for chunk in runtime.stream(BashAction(...))`. Afterwards
        stream.observation (or stream.response for a Command) holds the
        final result; errors are raised at the end of the iteration."""
        return Stream(self._conn, action)

    async def close_session(self, request: CloseBashSessionRequest) -> CloseBashSessionResponse:
        """End a session and everything running in it."""
        await self._conn.request("close_session", pb.CloseSessionRequest(session=request.session))
        return CloseBashSessionResponse()

    async def list_sessions(self) -> list[SessionInfo]:
        """List the daemon's sessions (of every client)."""
        r = await self._conn.request("list_sessions", pb.ListSessionsRequest())
        return [SessionInfo(name=s.name, pid=s.pid, state=_STATE.get(s.state, "unknown"),
                            created=s.created, last_command=s.last_command,
                            exit_status=s.exit_status) for s in r.sessions]

    async def stats(self, prometheus: bool = False) -> Stats:
        """The daemon's statistics; with prometheus=True, .prometheus holds
        them in the Prometheus text exposition format as well."""
        r = await self._conn.request("stats", pb.StatsRequest(prometheus=prometheus))
        return Stats(
            uptime=r.uptime, daemon_version=r.daemon_version,
            sessions={"starting": r.sessions_starting, "idle": r.sessions_idle,
                      "running": r.sessions_running, "dead": r.sessions_dead},
            sessions_created=r.sessions_created, commands=r.commands,
            executes=r.executes, requests=r.requests, errors=r.errors,
            bytes_in=r.bytes_in, bytes_out=r.bytes_out,
            command_latency=[HistogramBucket(le=b.le if math.isfinite(b.le) else math.inf,
                                             count=b.count) for b in r.command_latency],
            command_latency_count=r.command_latency_count,
            command_latency_sum=r.command_latency_sum,
            connections=[ConnStats(id=c.id, peer=c.peer, client_name=c.client_name,
                                   requests=c.requests, bytes_in=c.bytes_in,
                                   bytes_out=c.bytes_out, connected=c.connected)
                         for c in r.connections],
            prometheus=r.text)

    async def history(self, session: str = "default", limit: Optional[int] = None) -> History:
        """The last commands of a session, oldest first (at most limit, the
        newest). An unknown session raises SessionDoesNotExistError."""
        req = pb.HistoryRequest(session=session)
        if limit is not None:
            if limit < 0:
                raise ValueError("limit must be >= 0")
            req.limit = min(limit, 2**32 - 1)
        r = await self._conn.request("history", req)
        return History(total=r.total, entries=[
            HistoryEntry(seq=e.seq, command=e.command,
                         exit_code=e.exit_code if e.WhichOneof("has_exit_code") else None,
                         started=e.started, duration=e.duration,
                         output_bytes=e.output_bytes, failure_reason=e.failure_reason)
            for e in r.entries])

    async def execute(self, command: Command) -> CommandResponse:
        """Run a one-off command as subprocess.run() would, on the daemon's
        host. check=True: a non-zero exit raises NonZeroExitCodeError (with
        e.response); a timeout raises CommandTimeoutError."""
        r = await self._conn.request("execute", _execute_request(command))
        return command_response_from(r)

    async def read_file(self, request: ReadFileRequest) -> ReadFileResponse:
        """Read a text file (encoding and errors as for Path.read_text())."""
        data = await self.read_bytes(request.path)
        return ReadFileResponse(content=_read_text(data, request.encoding, request.errors))

    async def read_bytes(self, path: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        """Read a file's bytes, or length bytes from offset."""
        m = pb.ReadFileRequest(path=path, offset=offset)
        if length is not None:
            m.length = length
        r = await self._conn.request("read_file", m)
        return r.content

    async def write_file(self, request: WriteFileRequest) -> WriteFileResponse:
        """Replace a file atomically, creating missing parent directories."""
        content = request.content
        m = pb.WriteFileRequest(path=request.path,
                                content=content.encode() if isinstance(content, str) else bytes(content))
        if request.mode is not None:
            m.mode = request.mode
        r = await self._conn.request("write_file", m)
        return WriteFileResponse(bytes_written=r.bytes_written)

    async def upload(self, request: UploadRequest) -> UploadResponse:
        """Copy a local file or directory tree to target_path on the daemon's
        host; nothing appears there unless the whole transfer succeeds."""
        return await transfer.upload(self._conn, request.source_path, request.target_path)

    async def download(self, request: DownloadRequest) -> DownloadResponse:
        """Copy a file or directory tree from the daemon's host to
        target_path; a failed download leaves nothing behind."""
        return await transfer.download(self._conn, request.source_path, request.target_path)

    async def send_input(self, session: str = "default", data: Union[bytes, str, None] = None,
                         *, keys: Optional[list[str]] = None) -> int:
        """Type into the program a command runs in session: data as is (no
        newline added; str as UTF-8), then the named keys (tmux style:
        "C-c", "Enter", "Up", ...). The output goes to whichever request
        waits on the session. Refused (InvalidRequestError) while bash is at
        its prompt or above 64 KiB; gives the bytes accepted."""
        m = pb.SendInputRequest(session=session, data=input_bytes(data, keys))
        return (await self._conn.request("send_input", m)).bytes_written

    def attach(self, session: str = "default", *, scrollback: Optional[int] = None,
               read_write: bool = False) -> Attachment:
        """Watch session's terminal live: `async with rt.attach(s) as a:
        async for data in a: ...` yields raw bytes (recent output first, up
        to scrollback bytes, default 16 KiB) and detaches on exit."""
        return Attachment(self._conn, session or "default", scrollback, read_write)

    async def close(self) -> CloseResponse:
        """Close the connection. Sessions live on in the daemon."""
        await self._conn.close()
        return CloseResponse()


class Stream:
    """The output of a streamed BashAction or Command, as an async iterator."""

    def __init__(self, conn: Connection, action: Union[BashAction, Command]):
        self._conn = conn
        self._action = action
        self._queue: asyncio.Queue = asyncio.Queue()
        self._pending: Any = None
        self._decoders: dict[int, Any] = {}
        self.observation: Optional[BashObservation] = None
        self.response: Optional[CommandResponse] = None

    def __aiter__(self) -> "Stream":
        return self

    def _part(self, chunk: Any) -> None:
        """Queue a chunk's text; a UTF-8 character split between chunks is
        decoded once it is whole."""
        dec = self._decoders.get(chunk.stream)
        if dec is None:
            dec = self._decoders[chunk.stream] = codecs.getincrementaldecoder("utf-8")("backslashreplace")
        text = dec.decode(chunk.data)
        if text:
            self._queue.put_nowait(text)

    async def _start(self) -> None:
        """Send the request; its end is queued after its last chunk."""
        if isinstance(self._action, Command):
            body, msg = "execute", _execute_request(self._action, stream=True)
        else:
            body, msg = "run", _bash_action(self._action, stream=True)
        self._pending = await self._conn.submit(body, msg, on_part=self._part)
        self._pending.future.add_done_callback(lambda f: self._queue.put_nowait(_END))

    async def __anext__(self) -> str:
        if self._pending is None:
            await self._start()
        more, v = await stream_next(self._queue, self._pending, "stream")
        if more:
            return v
        if isinstance(self._action, Command):
            self.response = command_response_from(v)
        else:
            self.observation = observation_from(v)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop listening; the command itself runs on in the daemon."""
        if self._pending is not None:
            self._conn.pending.pop(self._pending.id, None)

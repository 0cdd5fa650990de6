"""One connection to swerexd: addresses, framing, Hello, requests by id,
keepalive and reconnect.

The wire is a stream of frames: 1 flag byte (0), a 4-byte big-endian length,
then a swerex.v1.Request (to the daemon) or Response (from it). After Hello,
any number of requests are in flight; each Response carries the id of the
request it answers. A reader task hands every Response to the pending
request of its id: chunks and download entries to the request's callback,
the final response to its future.

Reconnect works as libswerex's does: the client presents the same random
identity (client_id) in every Hello. When a connection is lost, pending
requests are kept; after reconnecting (backoff 50 ms doubling to 2 s, for
at most reconnect_timeout) they are sent again under their ids. If the
daemon still knew the identity (HelloResponse.resumed) it answers each from
its cache or lets it join the still running first attempt, so nothing runs
twice; if not, only requests safe to repeat are sent again and the others
fail with DisconnectedError. Streams that had delivered output and uploads
fail as soon as the loss is seen: their data cannot be replayed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import exceptions as exc
from . import swerex_pb2 as pb
from .models import BashObservation, CommandResponse

__all__ = ["Target", "resolve", "default_socket_path", "load_token", "Connection"]

PROTOCOL_VERSION = 1
CLIENT_VERSION = "0.1.0"
MAX_FRAME_IN = 256 * 1024 * 1024   # an observation can be large
TOKEN_MAX = 4096
CONNECT_TIMEOUT = 10.0
KEEPALIVE = 10.0
RECONNECT_TIMEOUT = 30.0
BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
HEADER = struct.Struct(">BI")

# Requests that may run twice without harm: sent again even when the daemon
# forgot this client across a reconnect.
REPEATABLE = frozenset({"is_alive", "list_sessions", "read_file", "download",
                        "stats", "history"})


@dataclass
class Target:
    """Where the daemon is: a Unix socket path, or a TCP host and port."""

    kind: str                 # "unix", "tcp" or "tls"
    path: str = ""
    host: str = ""
    port: int = 0
    addr: str = ""            # for messages


def default_socket_path() -> str:
    """Give the daemon's default socket: $XDG_RUNTIME_DIR's, else /tmp's."""
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run:
        return f"{run}/swerexd.sock"
    return f"/tmp/swerexd-{os.getuid()}/swerexd.sock"


def _split_hostport(url: str, hostport: str) -> tuple[str, int]:
    """Split "HOST:PORT" or "[V6]:PORT"."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or hostport[end + 1:end + 2] != ":":
            raise ValueError(f'bad address in URL "{url}" (want [ADDR]:PORT)')
        host, port = hostport[1:end], hostport[end + 2:]
    else:
        host, sep, port = hostport.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f'bad address in URL "{url}" (want HOST:PORT)')
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'bad host or port in URL "{url}"')
    return host, int(port)


def resolve(url: Optional[str]) -> Target:
    """Parse a URL as libswerex does (None: $SWEREX_URL, else the default socket)."""
    if not url:
        url = os.environ.get("SWEREX_URL") or None
    if url is None:
        path = default_socket_path()
        return Target("unix", path=path, addr=path)
    if url.startswith("unix:"):
        path = url[5:]
        if path.startswith("///"):
            path = path[2:]
        if not path:
            raise ValueError(f'no socket path in URL "{url}"')
        return Target("unix", path=path, addr=path)
    if url.startswith("/"):
        return Target("unix", path=url, addr=url)
    for scheme in ("tls", "tcp"):
        if url.startswith(scheme + "://"):
            host, port = _split_hostport(url, url[len(scheme) + 3:])
            addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            return Target(scheme, host=host, port=port, addr=addr)
    raise ValueError(f'unsupported URL scheme: "{url}" (want unix:/PATH, /PATH, '
                     'tls://HOST:PORT or tcp://HOST:PORT)')


def _token_file(path: str) -> str:
    """Read a token file's first line."""
    with open(path, "rb") as f:
        data = f.read(TOKEN_MAX + 2)
    token = data.rstrip(b"\r\n")
    if len(token) > TOKEN_MAX or b"\0" in token:
        raise ValueError(f"token file {path}: longer than {TOKEN_MAX} bytes or holds a NUL byte")
    if not token:
        raise ValueError(f"token file {path} is empty")
    return token.decode()


def load_token(target: Target, token: Optional[str], token_file: Optional[str]) -> str:
    """Take the token as libswerex does: the argument, else token_file's first
    line; for TCP, else $SWEREX_TOKEN, else the file $SWEREX_TOKEN_FILE names.
    A Unix socket ignores tokens, so the environment is not read for one."""
    if token is not None:
        if len(token) > TOKEN_MAX:
            raise ValueError(f"token longer than {TOKEN_MAX} bytes")
        return token
    if token_file is not None:
        return _token_file(token_file)
    if target.kind == "unix":
        return ""
    env = os.environ.get("SWEREX_TOKEN")
    if env:
        if len(env) > TOKEN_MAX:
            raise ValueError(f"$SWEREX_TOKEN is longer than {TOKEN_MAX} bytes")
        return env
    env = os.environ.get("SWEREX_TOKEN_FILE")
    if env:
        return _token_file(env)
    return ""


def tls_context(ca: Optional[str], cert: Optional[str], key: Optional[str]) -> ssl.SSLContext:
    """Make a client TLS context: the daemon verified against ca (None: the
    system's store), with a client certificate for mTLS if given."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def frame(msg: Any) -> bytes:
    """Encode a message as one frame."""
    data = msg.SerializeToString()
    return HEADER.pack(0, len(data)) + data


@dataclass(eq=False)
class Pending:
    """A request waiting for its final response."""

    id: int
    body: str                      # the Request's oneof case
    data: bytes                    # its frame, to send again after a reconnect
    future: asyncio.Future
    on_part: Optional[Callable[[Any], None]] = None   # chunks, entries
    delivered: bool = False        # parts were handed on: cannot be replayed
    sent: bool = False             # written to a connection
    fail_on_loss: bool = False     # uploads


class Connection:
    """A connection to swerexd shared by any number of concurrent requests.

    Bound to the event loop it first connects from.
    """

    def __init__(self, url: Optional[str] = None, *, token: Optional[str] = None,
                 token_file: Optional[str] = None, ca: Optional[str] = None,
                 cert: Optional[str] = None, key: Optional[str] = None,
                 server_name: Optional[str] = None, client_name: str = "swerexd-python",
                 connect_timeout: float = CONNECT_TIMEOUT, keepalive: float = KEEPALIVE,
                 reconnect: bool = True, reconnect_timeout: float = RECONNECT_TIMEOUT):
        self.target = resolve(url)
        self.token = load_token(self.target, token, token_file)
        self.ssl: Optional[ssl.SSLContext] = None
        if self.target.kind == "tls":
            self.ssl = tls_context(ca if ca is not None else os.environ.get("SWEREX_CA"),
                                   cert if cert is not None else os.environ.get("SWEREX_CERT"),
                                   key if key is not None else os.environ.get("SWEREX_KEY"))
        self.server_name = server_name
        self.client_name = client_name
        self.connect_timeout = connect_timeout or CONNECT_TIMEOUT
        self.keepalive = keepalive or KEEPALIVE     # < 0: no pings
        self.reconnect = reconnect
        self.reconnect_timeout = reconnect_timeout or RECONNECT_TIMEOUT
        self.identity = os.urandom(16) if reconnect else b""

        self.daemon_version = ""
        self.max_frame = 0
        self.reconnects = 0
        self.next_id = 1
        self.pending: dict[int, Pending] = {}
        self.gen = 0
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self.tasks: list[asyncio.Task] = []
        self.connected: Optional[asyncio.Future] = None   # set while (re)connecting
        self.closed = False
        self.dead: Optional[exc.SwerexException] = None   # lost for good
        self.last_rx = 0.0

    # Opening ------------------------------------------------------------

    async def _open(self, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """Connect and shake hands within timeout; give the streams and resumed."""
        t = self.target
        try:
            return await asyncio.wait_for(self._open_now(), timeout)
        except asyncio.TimeoutError:
            raise exc.SwerexConnectionError(
                f"swerexd at {t.addr} did not answer the handshake in time") from None
        except ssl.SSLError as e:
            raise exc.SwerexConnectionError(f"TLS handshake with {t.addr} failed: {e}") from None
        except OSError as e:
            if isinstance(e, exc.SwerexException):
                raise
            raise exc.SwerexConnectionError(
                f"cannot connect to swerexd at {t.addr}: {e.strerror or e}") from None

    async def _open_now(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """Connect and shake hands (see _open)."""
        t = self.target
        if t.kind == "unix":
            r, w = await asyncio.open_unix_connection(t.path, limit=1 << 20)
        else:
            r, w = await asyncio.open_connection(
                t.host, t.port, limit=1 << 20, ssl=self.ssl,
                server_hostname=(self.server_name or t.host) if self.ssl else None)
            _tune_tcp(w, self.keepalive)
        try:
            return r, w, await self._hello(r, w)
        except BaseException:
            w.close()
            raise

    async def _hello(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        """Send Hello, wait for its answer; return HelloResponse.resumed."""
        req = pb.Request(id=self.next_id)
        self.next_id += 1
        req.hello.protocol_version = PROTOCOL_VERSION
        req.hello.client_name = self.client_name
        req.hello.client_version = CLIENT_VERSION
        req.hello.token = self.token
        req.hello.client_id = self.identity
        w.write(frame(req))
        await w.drain()
        resp = await _read_frame(r)
        if resp is None:
            raise exc.SwerexConnectionError("swerexd closed the connection during the handshake")
        kind = resp.WhichOneof("body")
        if kind == "error":
            raise error_from(resp.error)
        if kind != "hello" or resp.id != req.id:
            raise exc.ProtocolError("unexpected answer to hello from swerexd")
        hr = resp.hello
        if hr.protocol_version != PROTOCOL_VERSION:
            raise exc.UnsupportedVersionError(
                f"swerexd speaks protocol version {hr.protocol_version}, this client {PROTOCOL_VERSION}")
        self.daemon_version = hr.daemon_version
        self.max_frame = hr.max_frame
        return hr.resumed

    async def connect(self) -> None:
        """Open the first connection (not retried: a failure raises)."""
        if self.gen > 0:
            return
        if self.connected is not None:
            await asyncio.shield(self.connected)
            return
        loop = asyncio.get_running_loop()
        self.connected = loop.create_future()
        try:
            r, w, _ = await self._open(self.connect_timeout)
        except BaseException as e:
            # A later call tries again from scratch.
            fut, self.connected = self.connected, None
            if isinstance(e, Exception):
                fut.set_exception(e)
                fut.exception()   # retrieved: no "never retrieved" warning
            else:
                fut.cancel()
            raise
        self._attach(r, w)
        self.connected.set_result(None)
        self.connected = None
        if self.keepalive > 0:
            self._spawn(self._keepalive())

    def _spawn(self, coro: Any) -> None:
        """Run a task of the connection's, forgetting those that ended."""
        self.tasks = [t for t in self.tasks if not t.done()]
        self.tasks.append(asyncio.create_task(coro))

    def _attach(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        """Start using a connection: its reader task."""
        self.reader, self.writer = r, w
        self.gen += 1
        self.last_rx = time.monotonic()
        self._spawn(self._read_loop(r, self.gen))

    # Requests -----------------------------------------------------------

    async def request(self, body: str, msg: Any, *, on_part: Optional[Callable[[Any], None]] = None,
                      fail_on_loss: bool = False) -> Any:
        """Send a request whose oneof case is body and give its final response.

        Raises the daemon's error as its exception class."""
        p = await self.submit(body, msg, on_part=on_part, fail_on_loss=fail_on_loss)
        try:
            resp = await asyncio.shield(p.future)
        except asyncio.CancelledError:
            # The answer, when it comes, has no one to go to.
            self.pending.pop(p.id, None)
            raise
        return resp

    async def submit(self, body: str, msg: Any, *, on_part: Optional[Callable[[Any], None]] = None,
                     fail_on_loss: bool = False, want_reply: bool = True) -> Pending:
        """Queue a request; give its Pending (whose future gets the final
        Response body message). want_reply=False: nothing waits for an answer."""
        await self._ready()
        req = pb.Request(id=self.next_id)
        self.next_id += 1
        getattr(req, body).CopyFrom(msg)
        data = frame(req)
        if self.max_frame and len(data) - HEADER.size > self.max_frame:
            raise exc.InvalidRequestError(
                f"request of {len(data) - HEADER.size} bytes is larger than "
                f"swerexd's limit of {self.max_frame}")
        p = Pending(req.id, body, data, asyncio.get_running_loop().create_future(),
                    on_part, fail_on_loss=fail_on_loss)
        if want_reply:
            self.pending[p.id] = p
        if self.writer is not None:
            p.sent = True
            self.writer.write(data)
            if self.writer.transport.get_write_buffer_size() > (4 << 20):
                await self._drain()
        return p

    async def _drain(self) -> None:
        """Wait until the socket took most of what is queued (bounded memory)."""
        w = self.writer
        if w is None:
            return
        try:
            await w.drain()
        except (ConnectionError, OSError):
            pass    # the reader notices the loss and handles it

    async def _ready(self) -> None:
        """Wait for a usable connection: the first, or a reconnect under way."""
        if self.closed:
            raise exc.DisconnectedError("the runtime is closed")
        if self.dead is not None:
            raise type(self.dead)(str(self.dead), extra_info=self.dead.extra_info)
        if self.gen == 0:
            await self.connect()
        # While reconnecting, requests are queued and sent after the resume.

    # Reading ------------------------------------------------------------

    async def _read_loop(self, r: asyncio.StreamReader, gen: int) -> None:
        """Hand every response to its request until the connection ends."""
        why = "connection to swerexd lost"
        try:
            while True:
                resp = await _read_frame(r)
                if resp is None:
                    break
                self.last_rx = time.monotonic()
                if resp.id == 0:
                    # A connection-level error: the daemon closes after it.
                    if resp.WhichOneof("body") == "error":
                        self._lose(error_from(resp.error))
                        return
                    continue
                self._dispatch(resp)
        except exc.SwerexException as e:
            self._lose(e)
            return
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
            why = f"connection to swerexd lost: {e}" if str(e) else why
        except asyncio.CancelledError:
            return
        if gen == self.gen and self.writer is not None and not self.closed:
            self._drop(why)

    def _dispatch(self, resp: Any) -> None:
        """Give one response to the request of its id."""
        p = self.pending.get(resp.id)
        if p is None:
            return      # a cancelled request's answer
        kind = resp.WhichOneof("body")
        if kind in ("chunk", "entry"):
            p.delivered = True
            if p.on_part is not None:
                try:
                    p.on_part(getattr(resp, kind))
                except Exception as e:  # the consumer failed: the request does
                    del self.pending[p.id]
                    if not p.future.done():
                        p.future.set_exception(e)
            return
        if kind == "pong":
            return
        del self.pending[p.id]
        if p.future.done():
            return
        if kind == "error":
            p.future.set_exception(error_from(resp.error))
        else:
            p.future.set_result(getattr(resp, kind))

    # Losing the connection --------------------------------------------

    def _close_transport(self) -> None:
        """Close the current socket, if any."""
        w, self.writer, self.reader = self.writer, None, None
        if w is not None:
            w.close()

    def _fail(self, p: Pending, e: Exception) -> None:
        """Fail one request."""
        self.pending.pop(p.id, None)
        if not p.future.done():
            p.future.set_exception(e)
            p.future.exception()

    def _lose(self, e: exc.SwerexException) -> None:
        """Lose the connection for good: fail every pending request."""
        self.dead = e
        self._close_transport()
        for p in list(self.pending.values()):
            self._fail(p, type(e)(str(e), extra_info=e.extra_info))
        if self.connected is not None and not self.connected.done():
            self.connected.set_exception(type(e)(str(e), extra_info=e.extra_info))
            self.connected.exception()

    def _drop(self, why: str) -> None:
        """A transport loss: reconnect and resume if allowed, else lose."""
        if self.writer is None:
            return      # already seen (keepalive, then the reader's EOF)
        if not self.reconnect:
            self._lose(exc.DisconnectedError(why))
            return
        self._close_transport()
        for p in list(self.pending.values()):
            if p.delivered or p.fail_on_loss:
                self._fail(p, exc.DisconnectedError(
                    why + " (a stream or upload in progress cannot be resumed)"))
        self.connected = asyncio.get_running_loop().create_future()
        self._spawn(self._reconnect(why))

    async def _reconnect(self, why: str) -> None:
        """Connect again with backoff, then send the pending requests again."""
        give_up = time.monotonic() + self.reconnect_timeout
        backoff = BACKOFF_MIN
        last = why
        while not self.closed:
            await asyncio.sleep(backoff)
            left = give_up - time.monotonic()
            if left <= 0:
                break
            try:
                r, w, resumed = await self._open(min(left, self.connect_timeout))
            except (exc.UnauthenticatedError, exc.UnsupportedVersionError) as e:
                self._lose(type(e)(f"cannot reconnect: {e}", extra_info=e.extra_info))
                return
            except exc.SwerexException as e:
                last = str(e)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            if self.closed:
                w.close()
                return
            self._attach(r, w)
            self._resume(resumed)
            fut, self.connected = self.connected, None
            if fut is not None and not fut.done():
                fut.set_result(None)
            return
        if not self.closed:
            self._lose(exc.DisconnectedError(
                f"gave up reconnecting after {self.reconnect_timeout:g} s: {last}"))

    def _resume(self, resumed: bool) -> None:
        """Send the requests of the lost connection again, in id order, ahead
        of those queued while reconnecting; if the daemon forgot this client,
        only the repeatable ones (the others may or may not have run)."""
        self.reconnects += 1
        again, queued = [], []
        for p in sorted(self.pending.values(), key=lambda p: p.id):
            if not p.sent:
                queued.append(p)
            elif not resumed and not (p.body in REPEATABLE and not p.delivered):
                self._fail(p, exc.DisconnectedError(
                    "connection lost and swerexd no longer knew this client: "
                    "the request may or may not have run"))
            else:
                again.append(p)
        for p in queued:
            p.sent = True
        if self.writer is not None:
            self.writer.write(b"".join(p.data for p in again + queued))

    # Keepalive and closing ----------------------------------------------

    async def _keepalive(self) -> None:
        """Ping when nothing came for keepalive seconds; with nothing for
        twice as long, take the connection as lost."""
        tick = self.keepalive / 4
        try:
            while not self.closed and self.dead is None:
                await asyncio.sleep(tick)
                if self.writer is None:
                    continue
                quiet = time.monotonic() - self.last_rx
                if quiet >= 2 * self.keepalive:
                    self._drop(f"swerexd did not answer for {2 * self.keepalive:g} s (keepalive)")
                elif quiet >= self.keepalive:
                    req = pb.Request(id=self.next_id)
                    self.next_id += 1
                    req.ping.payload = b""
                    self.writer.write(frame(req))
        except asyncio.CancelledError:
            pass

    async def close(self) -> None:
        """Close the connection; pending requests fail. Sessions live on."""
        if self.closed:
            return
        self.closed = True
        w = self.writer
        self._close_transport()
        for p in list(self.pending.values()):
            self._fail(p, exc.DisconnectedError("the runtime was closed"))
        for t in self.tasks:
            if t is not asyncio.current_task():
                t.cancel()
        for t in self.tasks:
            if t is not asyncio.current_task():
                try:
                    await t
                except BaseException:
                    pass
        self.tasks.clear()
        if w is not None:
            try:
                await w.wait_closed()
            except (ConnectionError, OSError, ssl.SSLError):
                pass


def _tune_tcp(w: asyncio.StreamWriter, keepalive: float) -> None:
    """Turn on TCP keepalive: probes after keepalive s, dead after about twice."""
    s = w.get_extra_info("socket")
    if s is None:
        return
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle = max(1, int(keepalive))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, idle // 4))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


async def _read_frame(r: asyncio.StreamReader) -> Optional[Any]:
    """Read one Response frame; None at a clean end of stream."""
    try:
        head = await r.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    flag, length = HEADER.unpack(head)
    if flag != 0:
        raise exc.ProtocolError(f"bad frame from swerexd: flag {flag}")
    if length > MAX_FRAME_IN:
        raise exc.ProtocolError(f"bad frame from swerexd: {length} bytes is above the limit")
    resp = pb.Response()
    resp.ParseFromString(await r.readexactly(length))
    return resp


def decode(data: bytes) -> str:
    """Decode what a program printed: UTF-8, other bytes as \\xNN escapes
    (as SWE-ReX's local runtime does)."""
    return data.decode("utf-8", errors="backslashreplace")


def observation_from(o: Any) -> BashObservation:
    """Convert the wire's BashObservation."""
    return BashObservation(
        output=decode(o.output),
        exit_code=o.exit_code if o.WhichOneof("has_exit_code") else None,
        failure_reason=o.failure_reason, expect_string=o.expect_string,
        truncated=o.truncated, output_bytes=o.output_bytes,
        carried_over=o.carried_over)


def command_response_from(r: Any) -> CommandResponse:
    """Convert the wire's ExecuteResponse."""
    return CommandResponse(
        stdout=decode(r.stdout), stderr=decode(r.stderr),
        exit_code=r.exit_code if r.WhichOneof("has_exit_code") else None,
        signal=r.signal, failure_reason=r.failure_reason,
        stdout_truncated=r.stdout_truncated, stderr_truncated=r.stderr_truncated)


def error_from(e: Any) -> exc.SwerexException:
    """Turn the daemon's Error into the exception of its kind, with the
    observation or command response it carries."""
    kind = pb.ErrorKind.Name(e.kind) if e.kind in pb.ErrorKind.values() else "UNSPECIFIED"
    return exc.error_class(kind)(
        e.message, extra_info=dict(e.extra),
        observation=observation_from(e.observation) if e.HasField("observation") else None,
        response=command_response_from(e.execute) if e.HasField("execute") else None)

"""SyncRuntime: Runtime's methods as plain blocking calls, for scripts.

The Runtime lives on a private event loop in a background thread, so a
SyncRuntime works anywhere, also from code that runs inside another event
loop (a notebook), and its connection keeps answering pings between calls.
Calls from several threads are fine: each waits for its own answer.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Iterator, Optional, Union

from .models import (
    BashAction, BashInterruptAction, BashObservation, CloseBashSessionRequest,
    CloseBashSessionResponse, CloseResponse, Command, CommandResponse,
    CreateBashSessionRequest, CreateBashSessionResponse, DownloadRequest,
    DownloadResponse, IsAliveResponse, ReadFileRequest, ReadFileResponse,
    SessionInfo, UploadRequest, UploadResponse, WriteFileRequest,
    WriteFileResponse, History, Stats,
)
from .runtime import Runtime

__all__ = ["SyncRuntime", "SyncStream", "SyncAttachment"]


class SyncRuntime:
    """A blocking swerexd client; takes Runtime's arguments."""

    def __init__(self, *args: Any, **kwargs: Any):
        # First, so that bad arguments raise before a thread exists.
        self.runtime = Runtime(*args, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="swerexd-client", daemon=True)
        self._thread.start()
        self._closed = False

    def _call(self, coro: Any) -> Any:
        """Run a coroutine on the private loop and wait for its result."""
        if self._closed:
            coro.close()
            raise RuntimeError("the SyncRuntime is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> "SyncRuntime":
        self.connect()
        return self

    def __exit__(self, *a: Any) -> None:
        self.close()

    @property
    def daemon_version(self) -> str:
        return self.runtime.daemon_version

    @property
    def reconnects(self) -> int:
        return self.runtime.reconnects

    def connect(self) -> None:
        self._call(self.runtime.connect())

    def is_alive(self, *, timeout: Optional[float] = None) -> IsAliveResponse:
        return self._call(self.runtime.is_alive(timeout=timeout))

    def wait_until_alive(self, *, timeout: float = 60.0) -> None:
        self._call(self.runtime.wait_until_alive(timeout=timeout))

    def create_session(self, request: CreateBashSessionRequest) -> CreateBashSessionResponse:
        return self._call(self.runtime.create_session(request))

    def run_in_session(self, action: Union[BashAction, BashInterruptAction]) -> BashObservation:
        return self._call(self.runtime.run_in_session(action))

    def resize(self, session: str, rows: int, cols: int) -> None:
        self._call(self.runtime.resize(session, rows, cols))

    def close_session(self, request: CloseBashSessionRequest) -> CloseBashSessionResponse:
        return self._call(self.runtime.close_session(request))

    def list_sessions(self) -> list[SessionInfo]:
        return self._call(self.runtime.list_sessions())

    def stats(self, prometheus: bool = False) -> Stats:
        return self._call(self.runtime.stats(prometheus))

    def history(self, session: str = "default", limit: Optional[int] = None) -> History:
        return self._call(self.runtime.history(session, limit))

    def execute(self, command: Command) -> CommandResponse:
        return self._call(self.runtime.execute(command))

    def read_file(self, request: ReadFileRequest) -> ReadFileResponse:
        return self._call(self.runtime.read_file(request))

    def read_bytes(self, path: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        return self._call(self.runtime.read_bytes(path, offset, length))

    def write_file(self, request: WriteFileRequest) -> WriteFileResponse:
        return self._call(self.runtime.write_file(request))

    def upload(self, request: UploadRequest) -> UploadResponse:
        return self._call(self.runtime.upload(request))

    def download(self, request: DownloadRequest) -> DownloadResponse:
        return self._call(self.runtime.download(request))

    def stream(self, action: Union[BashAction, Command]) -> "SyncStream":
        """Iterate over a command's output as it is printed (see Runtime.stream)."""
        return SyncStream(self, action)

    def send_input(self, session: str = "default", data: Union[bytes, str, None] = None,
                   *, keys: Optional[list[str]] = None) -> int:
        """Type into a session's program (see Runtime.send_input)."""
        return self._call(self.runtime.send_input(session, data, keys=keys))

    def attach(self, session: str = "default", *, scrollback: Optional[int] = None,
               read_write: bool = False) -> "SyncAttachment":
        """Watch a session's terminal (see Runtime.attach): iterate for
        bytes; `with` or detach() ends it."""
        return SyncAttachment(self, self.runtime.attach(
            session, scrollback=scrollback, read_write=read_write))

    def close(self) -> CloseResponse:
        """Close the connection and stop the private loop."""
        if self._closed:
            return CloseResponse()
        try:
            self._call(self.runtime.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
        return CloseResponse()


_END = object()


class SyncStream:
    """A Stream read from another thread: chunks pass through a queue."""

    def __init__(self, sync: SyncRuntime, action: Union[BashAction, Command]):
        self._queue: queue.Queue = queue.Queue()
        self._stream = sync.runtime.stream(action)
        self._error: Optional[BaseException] = None
        self._done = False
        self._future = asyncio.run_coroutine_threadsafe(self._pump(), sync._loop)

    async def _pump(self) -> None:
        """Move the stream's chunks to the queue, then its end."""
        try:
            async for chunk in self._stream:
                self._queue.put(chunk)
        except BaseException as e:
            self._error = e
        finally:
            self._queue.put(_END)

    @property
    def observation(self) -> Optional[BashObservation]:
        return self._stream.observation

    @property
    def response(self) -> Optional[CommandResponse]:
        return self._stream.response

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            self._future.result()
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item


class SyncAttachment:
    """An Attachment read from another thread: chunks pass through a queue."""

    def __init__(self, sync: SyncRuntime, attachment: Any):
        self._sync = sync
        self._att = attachment
        self._queue: queue.Queue = queue.Queue()
        self._error: Optional[BaseException] = None
        self._done = False
        sync._call(attachment.start())
        self._future = asyncio.run_coroutine_threadsafe(self._pump(), sync._loop)

    async def _pump(self) -> None:
        """Move the attachment's chunks to the queue, then its end."""
        try:
            async for chunk in self._att:
                self._queue.put(chunk)
        except BaseException as e:
            self._error = e
        finally:
            self._queue.put(_END)

    @property
    def reason(self) -> Optional[str]:
        return self._att.reason

    def __enter__(self) -> "SyncAttachment":
        return self

    def __exit__(self, *a: Any) -> None:
        self.detach()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            self._future.result()
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item

    def detach(self) -> None:
        """End the attachment and wait for its end."""
        self._sync._call(self._att.detach())

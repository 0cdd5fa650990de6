"""Raw input and live attach: SendInput, key names, and Attachment.

An Attachment is a pending AttachRequest: its chunks are the session's
terminal bytes (the recent output first), raw, without the daemon's prompt
markers; it ends with a DetachRequest, the session's end or the
connection's end.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional, Union

from . import exceptions as exc
from . import swerex_pb2 as pb

__all__ = ["Attachment", "key_bytes", "input_bytes"]

# Key names, tmux send-keys style, as xterm sends them (the sessions' TERM).
_KEYS = {
    "Escape": b"\x1b", "Esc": b"\x1b", "Enter": b"\r", "Tab": b"\t",
    "BTab": b"\x1b[Z", "Space": b" ", "BSpace": b"\x7f", "Backspace": b"\x7f",
    "Up": b"\x1b[A", "Down": b"\x1b[B", "Right": b"\x1b[C", "Left": b"\x1b[D",
    "Home": b"\x1b[H", "End": b"\x1b[F",
    "PageUp": b"\x1b[5~", "PgUp": b"\x1b[5~", "PPage": b"\x1b[5~",
    "PageDown": b"\x1b[6~", "PgDn": b"\x1b[6~", "NPage": b"\x1b[6~",
    "Insert": b"\x1b[2~", "IC": b"\x1b[2~", "Delete": b"\x1b[3~", "DC": b"\x1b[3~",
    "F1": b"\x1bOP", "F2": b"\x1bOQ", "F3": b"\x1bOR", "F4": b"\x1bOS",
    "F5": b"\x1b[15~", "F6": b"\x1b[17~", "F7": b"\x1b[18~", "F8": b"\x1b[19~",
    "F9": b"\x1b[20~", "F10": b"\x1b[21~", "F11": b"\x1b[23~", "F12": b"\x1b[24~",
}


def key_bytes(name: str) -> bytes:
    """The bytes a terminal sends for a key name (as libswerex's
    swerex_key_bytes): C-a .. C-z, C-[ C-\\ C-] C-^ C-_ C-@ C-Space, the
    names above, a single character as itself, M- before any of them."""
    meta = b""
    if name.startswith("M-") and len(name) > 2:
        meta, name = b"\x1b", name[2:]
    ctl = name[2:] if name.startswith("C-") else name[1:] if name.startswith("^") and len(name) > 1 else None
    if ctl is not None:
        if ctl == "Space":
            return meta + b"\x00"
        if len(ctl) == 1:
            c = ctl
            if "a" <= c <= "z":
                return meta + bytes([ord(c) - ord("a") + 1])
            if "@" <= c <= "_":
                return meta + bytes([ord(c) - ord("@")])
            if c == "?":
                return meta + b"\x7f"
        raise ValueError(f"unknown key name: {'M-' if meta else ''}{name}")
    if name in _KEYS:
        return meta + _KEYS[name]
    if len(name) == 1:
        return meta + name.encode()
    raise ValueError(f"unknown key name: {'M-' if meta else ''}{name}")


def input_bytes(data: Union[bytes, str, None], keys: Optional[list[str]]) -> bytes:
    """SendInput's bytes: data as typed (str as UTF-8), then the keys."""
    out = data.encode() if isinstance(data, str) else bytes(data or b"")
    for k in keys or ():
        out += key_bytes(k)
    return out


_END = object()


async def stream_next(queue: asyncio.Queue, pending: Any, what: str) -> tuple[bool, Any]:
    """The next part of a streamed reply whose end is queued as _END after
    its last part: (True, part), or at the end (False, the reply's result),
    raising its error instead. Iterating again ends again."""
    item = await queue.get()
    if item is not _END:
        return True, item
    queue.put_nowait(_END)
    fut = pending.future
    if fut.cancelled():
        raise exc.DisconnectedError(f"the {what} was cancelled")
    e = fut.exception()
    if e is not None:
        raise e
    return False, fut.result()


class Attachment:
    """A session's terminal, live: `async for data in attachment` yields
    bytes until the attachment ends; `async with` (or detach()) ends it.
    Afterwards `reason` holds the daemon's ("detached", "session ended")."""

    def __init__(self, conn: Any, session: str, scrollback: Optional[int] = None,
                 read_write: bool = False):
        self._conn = conn
        self._msg = pb.AttachRequest(session=session, read_write=read_write)
        if scrollback is not None:
            self._msg.scrollback = int(scrollback)
        self._queue: asyncio.Queue = asyncio.Queue()
        self._pending: Any = None
        self.reason: Optional[str] = None

    async def start(self) -> "Attachment":
        """Send the AttachRequest (done by the first iteration otherwise)."""
        if self._pending is None:
            self._pending = await self._conn.submit(
                "attach", self._msg, on_part=lambda ch: self._queue.put_nowait(bytes(ch.data)),
                fail_on_loss=True)
            self._pending.future.add_done_callback(lambda f: self._queue.put_nowait(_END))
        return self

    async def __aenter__(self) -> "Attachment":
        return await self.start()

    async def __aexit__(self, *a: Any) -> None:
        await self.detach()

    def __aiter__(self) -> "Attachment":
        return self

    async def __anext__(self) -> bytes:
        await self.start()
        more, v = await stream_next(self._queue, self._pending, "attachment")
        if more:
            return v
        self.reason = v.reason
        raise StopAsyncIteration

    async def detach(self) -> None:
        """End the attachment (if it has not ended) and wait for its end."""
        p = self._pending
        if p is None or p.future.done():
            return
        try:
            await self._conn.request("detach", pb.DetachRequest(attach_id=p.id))
        except exc.InvalidRequestError:
            pass    # it ended meanwhile
        try:
            self.reason = (await asyncio.shield(p.future)).reason
        except exc.SwerexException:
            pass

    aclose = detach

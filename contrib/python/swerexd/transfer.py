"""Uploads and downloads of files and directory trees.

An upload walks the local tree (never following a symlink inside it) and
streams it as UploadData frames of up to 64 entries, files in pieces of at
most 1 MiB (a quarter of the daemon's frame limit if that is smaller); the
socket's write buffer is drained whenever it holds more than a few MiB, so
memory stays bounded. The UploadBegin's answer is the outcome.

A download writes each entry as it arrives into a staging directory beside
the destination and moves the result into place at the end (a directory is
merged into an existing one); a failed download leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import stat
import tempfile
from typing import Any, Optional

from . import exceptions as exc
from . import swerex_pb2 as pb
from .connection import Connection
from .models import DownloadResponse, UploadResponse

__all__ = ["upload", "download"]

PIECE = 1024 * 1024
BATCH = 64


class _Upload:
    """An upload in progress and its batch of entries for the next frame."""

    def __init__(self, conn: Connection, begin: Any):
        self.conn = conn
        self.begin = begin              # the UploadBegin's Pending
        self.piece = PIECE
        if conn.max_frame and conn.max_frame // 4 < PIECE:
            self.piece = max(1, conn.max_frame // 4)
        self.batch: list[Any] = []
        self.batch_bytes = 0

    async def flush(self) -> None:
        """Send the batch as one UploadData frame (which gets no answer)."""
        if self.begin.future.done():
            self.begin.future.result()      # the daemon refused: raise why
            raise exc.ProtocolError("swerexd finished the upload before it was sent")
        if self.batch:
            m = pb.UploadData(upload_id=self.begin.id, entries=self.batch)
            self.batch, self.batch_bytes = [], 0
            await self.conn.submit("upload_data", m, want_reply=False)

    async def add(self, path: str, type_: int, mode: int = 0, target: str = "",
                  data: bytes = b"", last: bool = False) -> None:
        """Add an entry, sending the batch first if it would not fit."""
        cost = len(path) + len(target) + len(data) + 32
        if len(self.batch) == BATCH or (self.batch and self.batch_bytes + cost > self.piece):
            await self.flush()
        self.batch.append(pb.TransferEntry(path=path, type=type_, mode=mode,
                                           link_target=target, data=data, last=last))
        self.batch_bytes += cost

    async def file(self, path: str, rel: str) -> None:
        """Send a regular file in pieces: the first carries the mode, the last
        has last set; an empty file is one entry."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ValueError(f"{path}: not a regular file")
            first = True
            data = f.read(self.piece)
            while True:
                ahead = f.read(self.piece) if len(data) == self.piece else b""
                last = not ahead
                await self.add(rel, pb.ENTRY_TYPE_FILE,
                               stat.S_IMODE(st.st_mode) if first else 0, data=data, last=last)
                if last:
                    return
                first = False
                data = ahead

    async def tree(self, path: str, rel: str) -> None:
        """Send the entries below a directory, each directory before its
        contents; symlinks as symlinks; sockets, fifos, devices skipped."""
        for name in sorted(os.listdir(path)):
            cpath = os.path.join(path, name)
            crel = f"{rel}/{name}" if rel else name
            st = os.lstat(cpath)
            if stat.S_ISDIR(st.st_mode):
                await self.add(crel, pb.ENTRY_TYPE_DIRECTORY, stat.S_IMODE(st.st_mode))
                await self.tree(cpath, crel)
            elif stat.S_ISLNK(st.st_mode):
                await self.add(crel, pb.ENTRY_TYPE_SYMLINK, stat.S_IMODE(st.st_mode),
                               target=os.readlink(cpath), last=True)
            elif stat.S_ISREG(st.st_mode):
                await self.file(cpath, crel)


async def upload(conn: Connection, source: str, target: str) -> UploadResponse:
    """Copy a local file or directory tree to target on the daemon's host."""
    st = os.stat(source)    # the source itself is followed, as cp does
    if not stat.S_ISDIR(st.st_mode) and not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{source}: not a regular file or a directory")
    is_dir = stat.S_ISDIR(st.st_mode)
    begin = await conn.submit("upload_begin",
                              pb.UploadBegin(target_path=target, is_directory=is_dir),
                              fail_on_loss=True)
    u = _Upload(conn, begin)
    end = None
    try:
        if is_dir:
            # The directory's own mode first, as "" (downloads do the same).
            await u.add("", pb.ENTRY_TYPE_DIRECTORY, stat.S_IMODE(st.st_mode))
            await u.tree(source, "")
        else:
            await u.file(source, "")
        await u.flush()
        end = await conn.submit("upload_end", pb.UploadEnd(upload_id=begin.id), fail_on_loss=True)
        done, _ = await asyncio.wait([begin.future, end.future],
                                     return_when=asyncio.FIRST_COMPLETED)
        if not begin.future.done() and end.future.exception() is not None:
            raise end.future.exception()
        r = await begin.future
    except BaseException:
        # Tell the daemon to discard what it has; its answers go nowhere.
        conn.pending.pop(begin.id, None)
        if not begin.future.done():
            begin.future.cancel()
            if conn.writer is not None and conn.dead is None and not conn.closed:
                try:
                    await conn.submit("upload_end", pb.UploadEnd(upload_id=begin.id, abort=True),
                                      want_reply=False)
                except exc.SwerexException:
                    pass
        raise
    finally:
        if end is not None:
            conn.pending.pop(end.id, None)
            if end.future.done() and not end.future.cancelled():
                end.future.exception()      # retrieved either way
    return UploadResponse(files=r.files, bytes=r.bytes)


def _path_ok(path: str) -> bool:
    """Check an entry's path: "" (the root) or relative components that are
    not empty, "." or "..", so whatever comes stays below the root."""
    if path == "":
        return True
    if path.startswith("/"):
        return False
    return all(c not in ("", ".", "..") for c in path.split("/"))


class _Download:
    """A download being written into its staging directory."""

    def __init__(self, target: str):
        self.target = target.rstrip("/") or target
        parent, name = os.path.split(self.target)
        if name in ("", ".", ".."):
            raise ValueError(f"bad destination: {target}")
        parent = parent or "."
        os.makedirs(parent, exist_ok=True)
        self.stage = tempfile.mkdtemp(prefix=f".{name[:200]}.swx-dl-", dir=parent)
        self.root = os.path.join(self.stage, "root")
        self.root_made = False
        self.root_is_dir = False
        self.f: Optional[Any] = None
        self.file = ""
        self.dirs: list[tuple[str, int]] = []

    def entry(self, e: Any) -> None:
        """Write one entry (called from the connection's reader)."""
        if not _path_ok(e.path):
            raise exc.ProtocolError(f'refusing entry "{e.path}" from swerexd: '
                                    'not a relative path below the destination')
        path = os.path.join(self.root, e.path) if e.path else self.root
        if self.f is not None:
            if e.type != pb.ENTRY_TYPE_FILE or e.path != self.file:
                raise exc.ProtocolError(f'swerexd sent "{e.path}" before the end of "{self.file}"')
        elif e.type == pb.ENTRY_TYPE_DIRECTORY:
            if e.path == "":
                self.root_is_dir = True
            self.root_made = True
            # Writable until the end; the real mode is set last.
            if not (e.path == "" and os.path.isdir(path)):
                os.mkdir(path, 0o700)
            self.dirs.append((e.path, e.mode or (0o777 & ~_umask())))
        elif e.type == pb.ENTRY_TYPE_SYMLINK:
            self.root_made = True
            os.symlink(e.link_target, path)
        elif e.type == pb.ENTRY_TYPE_FILE:
            self.root_made = True
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         e.mode or (0o666 & ~_umask()))
            self.f = os.fdopen(fd, "wb")
            self.file = e.path
        else:
            raise exc.ProtocolError(f"swerexd sent an entry of unknown type {e.type}")
        if e.type == pb.ENTRY_TYPE_FILE:
            self.f.write(e.data)
            if e.last:
                self.f.close()
                self.f = None

    def finish(self, is_directory: bool) -> None:
        """Move the download into place and set the directories' modes."""
        if self.f is not None:
            raise exc.ProtocolError(f'the download ended in the middle of "{self.file}"')
        if not self.root_made:
            # Nothing was sent: an empty directory or an empty file.
            if is_directory:
                os.mkdir(self.root)
            else:
                open(self.root, "xb").close()
            self.root_is_dir = is_directory
        elif self.root_is_dir != is_directory:
            raise exc.ProtocolError("swerexd sent a %s but called it a %s" % (
                "directory" if self.root_is_dir else "file",
                "directory" if is_directory else "file"))
        if self.root_is_dir and os.path.isdir(self.target) and not os.path.islink(self.target):
            _merge(self.root, self.target)
        else:
            os.replace(self.root, self.target)
        # Children were created after their parents: set theirs first.
        for rel, mode in reversed(self.dirs):
            os.chmod(os.path.join(self.target, rel) if rel else self.target, mode)

    def cleanup(self) -> None:
        """Remove what is left of the staging directory."""
        if self.f is not None:
            self.f.close()
            self.f = None
        shutil.rmtree(self.stage, ignore_errors=True)


_UMASK: Optional[int] = None


def _umask() -> int:
    """Give the process's umask, read once (reading it means setting it)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o22)
        os.umask(_UMASK)
    return _UMASK


def _merge(src: str, dst: str) -> None:
    """Move the entries of directory src into directory dst, merging
    directories found on both sides; a file replaces a file."""
    for name in sorted(os.listdir(src)):
        s, t = os.path.join(src, name), os.path.join(dst, name)
        try:
            os.rename(s, t)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY) and os.path.isdir(t) \
                    and not os.path.islink(t):
                _merge(s, t)
            else:
                raise


async def download(conn: Connection, source: str, target: str) -> DownloadResponse:
    """Copy a file or directory tree from the daemon's host to target."""
    d = _Download(target)
    try:
        r = await conn.request("download", pb.DownloadRequest(path=source), on_part=d.entry)
        d.finish(r.is_directory)
    finally:
        d.cleanup()
    return DownloadResponse(is_directory=r.is_directory, files=r.files, bytes=r.bytes)

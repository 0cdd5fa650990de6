"""Files: read, write, upload, download."""

import os
import stat
from pathlib import Path

import pytest

from swerexd import (
    DownloadRequest, ReadFileRequest, Runtime, UploadRequest, WriteFileRequest,
)


async def test_write_then_read(url, tmp):
    path = os.path.join(tmp, "new", "dir", "f.txt")
    async with Runtime(url) as rt:
        r = await rt.write_file(WriteFileRequest(content="first\nsecond\n", path=path))
        assert r.bytes_written == 13
        assert Path(path).read_text() == "first\nsecond\n"
        r = await rt.read_file(ReadFileRequest(path=path))
        assert r.content == "first\nsecond\n"
        await rt.write_file(WriteFileRequest(content=b"\x00\xff", path=path, mode=0o600))
        assert Path(path).read_bytes() == b"\x00\xff"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert await rt.read_bytes(path) == b"\x00\xff"


async def test_read_file_decodes_like_read_text(url, tmp):
    path = os.path.join(tmp, "latin.txt")
    Path(path).write_bytes("caf\u00e9\r\nna\u00efve\rend".encode("latin-1"))
    async with Runtime(url) as rt:
        for enc, errs in (("latin-1", None), ("utf-8", "replace"), ("ascii", "ignore")):
            r = await rt.read_file(ReadFileRequest(path=path, encoding=enc, errors=errs))
            assert r.content == Path(path).read_text(encoding=enc, errors=errs)
        with pytest.raises(UnicodeDecodeError):
            await rt.read_file(ReadFileRequest(path=path, encoding="utf-8"))


async def test_read_errors_are_os_errors(url, tmp):
    async with Runtime(url) as rt:
        with pytest.raises(FileNotFoundError) as ei:
            await rt.read_file(ReadFileRequest(path=os.path.join(tmp, "missing")))
        assert ei.value.extra_info["path"].endswith("missing")
        with pytest.raises(IsADirectoryError):
            await rt.read_file(ReadFileRequest(path=tmp))


def _tree(root):
    """Describe a tree: relative path -> (kind, mode, content or target)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), Path(p).read_bytes())
    return out


async def test_upload_and_download_tree(url, tmp):
    src = os.path.join(tmp, "src")
    os.makedirs(os.path.join(src, "sub", "empty"))
    Path(src, "a.txt").write_text("alpha\n")
    Path(src, "sub", "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(os.path.join(src, "sub", "run.sh"), 0o755)
    big = os.urandom(3 * 1024 * 1024 + 17)      # several pieces
    Path(src, "sub", "big.bin").write_bytes(big)
    os.symlink("../a.txt", os.path.join(src, "sub", "link"))
    dst = os.path.join(tmp, "remote", "dst")
    back = os.path.join(tmp, "back")
    async with Runtime(url) as rt:
        r = await rt.upload(UploadRequest(source_path=src, target_path=dst))
        assert r.files == 4 and r.bytes == 6 + 19 + len(big)
        assert _tree(dst) == _tree(src)
        r = await rt.download(DownloadRequest(source_path=dst, target_path=back))
        assert r.is_directory
        assert _tree(back) == _tree(src)
        # A single file, onto an existing one.
        await rt.upload(UploadRequest(source_path=os.path.join(src, "a.txt"),
                                      target_path=os.path.join(back, "sub", "run.sh")))
        assert Path(back, "sub", "run.sh").read_text() == "alpha\n"


async def test_failed_download_leaves_nothing(url, tmp):
    dst = os.path.join(tmp, "out")
    async with Runtime(url) as rt:
        with pytest.raises(FileNotFoundError):
            await rt.download(DownloadRequest(source_path=os.path.join(tmp, "nope"),
                                              target_path=dst))
    assert os.listdir(tmp) == []


async def test_upload_missing_source(url, tmp):
    async with Runtime(url) as rt:
        with pytest.raises(FileNotFoundError):
            await rt.upload(UploadRequest(source_path=os.path.join(tmp, "nope"),
                                          target_path=os.path.join(tmp, "x")))
        # The connection is still fine.
        assert await rt.is_alive()

"""Streaming: output arrives while the command runs."""

import os

import pytest

import swerexd
from swerexd import (
    BashAction, CloseBashSessionRequest, Command, CreateBashSessionRequest,
    NonZeroExitCodeError, Runtime,
)


async def test_chunks_arrive_before_the_end(url, name, tmp):
    go = os.path.join(tmp, "go")
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        # The command waits for a file we create only once "first" arrived:
        # this passes only if chunks are delivered while it runs.
        s = rt.stream(BashAction(
            command=f"echo first; while [ ! -e {go} ]; do sleep 0.01; done; echo second",
            session=name, timeout=60))
        seen = ""
        async for chunk in s:
            seen += chunk
            if seen == "first\n":
                open(go, "w").close()
        assert seen == "first\nsecond\n"
        assert s.observation.output == "first\nsecond\n"
        assert s.observation.exit_code == 0
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_stream_error_after_output(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        chunks = []
        with pytest.raises(NonZeroExitCodeError) as ei:
            async for chunk in rt.stream(BashAction(command="echo some; (exit 2)", session=name)):
                chunks.append(chunk)
        assert "".join(chunks) == "some\n"
        assert ei.value.observation.exit_code == 2
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_stream_multibyte_split(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        # é split across two writes (and so two chunks) still decodes whole.
        out = ""
        async for chunk in rt.stream(BashAction(
                command=r"printf 'caf\xc3'; sleep 0.2; printf '\xa9\n'", session=name)):
            out += chunk
        assert out == "café\n"
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_stream_command(url):
    async with Runtime(url) as rt:
        s = rt.stream(Command(["sh", "-c", "echo out; echo err >&2"]))
        got = sorted([c async for c in s])
        assert got == ["err\n", "out\n"]
        assert s.response.exit_code == 0


def test_sync_stream(url, name):
    with swerexd.SyncRuntime(url) as rt:
        rt.create_session(CreateBashSessionRequest(session=name))
        s = rt.stream(BashAction(command="for i in 1 2 3; do echo $i; done", session=name))
        assert "".join(s) == "1\n2\n3\n"
        assert s.observation.exit_code == 0
        rt.close_session(CloseBashSessionRequest(session=name))

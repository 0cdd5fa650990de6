"""Raw input (send_input) and live attach, async and sync."""

import asyncio

import pytest

from swerexd import (
    BashAction, CloseBashSessionRequest, CreateBashSessionRequest,
    InvalidRequestError, Runtime, SyncRuntime, key_bytes,
)


def test_key_bytes():
    assert key_bytes("C-c") == b"\x03"
    assert key_bytes("C-]") == b"\x1d"
    assert key_bytes("Up") == b"\x1b[A"
    assert key_bytes("F5") == b"\x1b[15~"
    assert key_bytes("M-x") == b"\x1bx"
    assert key_bytes("q") == b"q"
    with pytest.raises(ValueError):
        key_bytes("Nonsense")


async def test_send_input_answers_a_prompt(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        run = asyncio.ensure_future(rt.run_in_session(BashAction(
            command='read -n1 k; read line; echo "k=[$k] line=[$line]"',
            session=name, timeout=30)))
        # Not a wait: one yield lets the task write its request (it does
        # so before its first suspension), so the run goes out first on the
        # connection and the session is busy when the input arrives.
        await asyncio.sleep(0)
        assert await rt.send_input(name, "y") == 1
        assert await rt.send_input(name, "two words", keys=["Enter"]) == 10
        obs = await run
        assert "k=[y] line=[two words]" in obs.output
        with pytest.raises(InvalidRequestError):
            await rt.send_input(name, "ls\n")   # bash at its prompt
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_ctrl_c_interrupts(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        # C-c once the job, in the foreground, printed: typed earlier it
        # would reach bash itself, as on any terminal.
        s = rt.stream(BashAction(command="sh -c 'echo started; exec sleep 30'",
                                 session=name, check="silent"))
        async for chunk in s:
            if "started" in chunk:
                await rt.send_input(name, keys=["C-c"])
        assert s.observation.exit_code == 130
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_attach_sees_scrollback_live_and_detaches(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        await rt.run_in_session(BashAction(command="echo earlier", session=name))
        seen = b""
        async with rt.attach(name) as a:
            async for data in a:
                seen += data
                if b"earlier\r\n" in seen and b"later" not in seen:
                    await rt.run_in_session(BashAction(command="echo later", session=name))
                if b"later\r\n" in seen:
                    break
        assert a.reason == "detached"
        assert b"@swx" not in seen
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_attach_ends_with_the_session(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        a = await rt.attach(name, scrollback=0).start()
        await rt.close_session(CloseBashSessionRequest(session=name))
        async for _ in a:
            pass
        assert a.reason == "session ended"


def test_sync_attach_and_input(url, name):
    with SyncRuntime(url) as rt:
        rt.create_session(CreateBashSessionRequest(session=name))
        rt.run_in_session(BashAction(command="echo sync-seen", session=name))
        with rt.attach(name) as a:
            for data in a:
                if b"sync-seen" in data:
                    break
        assert a.reason == "detached"
        with pytest.raises(InvalidRequestError):
            rt.send_input(name, "x")
        rt.close_session(CloseBashSessionRequest(session=name))

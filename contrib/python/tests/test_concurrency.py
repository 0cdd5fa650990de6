"""Many requests over one connection."""

import asyncio
import os
import time

from swerexd import (
    BashAction, CloseBashSessionRequest, Command, CreateBashSessionRequest, Runtime,
)

N = 300


async def test_gather_300_sessions(url, name, diag):
    names = [f"{name}-{i}" for i in range(N)]
    async with Runtime(url) as rt:
        t0 = time.monotonic()
        await asyncio.gather(*(rt.create_session(CreateBashSessionRequest(session=n)) for n in names))
        t1 = time.monotonic()
        obs = await asyncio.gather(*(rt.run_in_session(BashAction(command=f"echo {n}; cd /", session=n))
                                     for n in names))
        t2 = time.monotonic()
        assert [o.output for o in obs] == [f"{n}\n" for n in names]
        obs = await asyncio.gather(*(rt.run_in_session(BashAction(command="pwd", session=n))
                                     for n in names))
        assert all(o.output == "/\n" for o in obs)
        t3 = time.monotonic()
        await asyncio.gather(*(rt.close_session(CloseBashSessionRequest(session=n)) for n in names))
        t4 = time.monotonic()
        diag(f"{N} sessions over one connection: create {t1 - t0:.3f} s, "
             f"run {t2 - t1:.3f} s, run again {t3 - t2:.3f} s, close {t4 - t3:.3f} s")
        left = {s.name for s in await rt.list_sessions()}
        assert not left & set(names)


async def test_concurrent_execute_and_slow_command(url, name, tmp):
    go = os.path.join(tmp, "go")
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        # A command waiting for a file does not hold up the others on the
        # same connection; the file is made once they all came back.
        slow = asyncio.ensure_future(rt.run_in_session(BashAction(
            command=f"while [ ! -e {go} ]; do sleep 0.01; done; echo done",
            session=name, timeout=60)))
        results = await asyncio.gather(*(rt.execute(Command(["echo", str(i)])) for i in range(200)))
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(200)]
        assert not slow.done()
        open(go, "w").close()
        obs = await slow
        assert obs.output == "done\n"
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_sessions_outlive_connections(url, name):
    async with Runtime(url) as a:
        await a.create_session(CreateBashSessionRequest(session=name))
        await a.run_in_session(BashAction(command="X=kept", session=name))
    async with Runtime(url) as b:
        obs = await b.run_in_session(BashAction(command="echo $X", session=name))
        assert obs.output == "kept\n"
        await b.close_session(CloseBashSessionRequest(session=name))

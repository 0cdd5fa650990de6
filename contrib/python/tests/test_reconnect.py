"""Reconnect: a lost connection is re-established and pending requests are
resumed by id (the daemon answers them once), as libswerex does."""

import asyncio
import os

import pytest

import swerexd
from swerexd import BashAction, BashInterruptAction, CloseBashSessionRequest, CreateBashSessionRequest, Runtime


class Proxy:
    """A Unix socket relay to the daemon whose connections can be cut."""

    def __init__(self, path, upstream):
        self.path = path
        self.upstream = upstream
        self.links = []
        self.accepted = 0

    async def start(self):
        self.server = await asyncio.start_unix_server(self._link, self.path)

    async def _link(self, cr, cw):
        self.accepted += 1
        try:
            ur, uw = await asyncio.open_unix_connection(self.upstream)
        except OSError:
            cw.close()
            return
        self.links.append((cw, uw))
        await asyncio.gather(self._pump(cr, uw), self._pump(ur, cw))

    @staticmethod
    async def _pump(r, w):
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    def cut(self):
        """Break every relayed connection at once, as a network failure would."""
        for cw, uw in self.links:
            cw.transport.abort()
            uw.transport.abort()
        self.links.clear()

    async def close(self):
        self.cut()
        self.server.close()
        await self.server.wait_closed()


async def _wait_fifo(fifo):
    """Wait, off the loop, for the command to write its line to fifo."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: open(fifo).read())


async def test_resume_pending_run_once(daemon, name, tmp):
    fifo, go, counter = (os.path.join(tmp, n) for n in ("fifo", "go", "counter"))
    os.mkfifo(fifo)
    proxy = Proxy(os.path.join(tmp, "proxy.sock"), daemon.socket)
    await proxy.start()
    try:
        async with Runtime("unix:" + proxy.path) as rt:
            await rt.create_session(CreateBashSessionRequest(session=name))
            run = asyncio.ensure_future(rt.run_in_session(BashAction(
                command=f"echo x >> {counter}; echo started > {fifo}; "
                        f"while [ ! -e {go} ]; do sleep 0.01; done; cat {counter}",
                session=name, timeout=60)))
            assert await _wait_fifo(fifo) == "started\n"
            proxy.cut()
            open(go, "w").close()
            obs = await run
            # Answered after the reconnect, and the command ran once.
            assert obs.output == "x\n"
            assert rt.reconnects == 1
            assert proxy.accepted == 2
            # The new connection serves new requests too.
            obs = await rt.run_in_session(BashAction(command="echo again", session=name))
            assert obs.output == "again\n"
            await rt.close_session(CloseBashSessionRequest(session=name))
    finally:
        await proxy.close()


async def test_without_reconnect_pending_fails(daemon, name, tmp):
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    proxy = Proxy(os.path.join(tmp, "proxy.sock"), daemon.socket)
    await proxy.start()
    try:
        rt = Runtime("unix:" + proxy.path, reconnect=False)
        await rt.create_session(CreateBashSessionRequest(session=name))
        run = asyncio.ensure_future(rt.run_in_session(BashAction(
            command=f"echo started > {fifo}; sleep 60",
            session=name, timeout=60)))
        await _wait_fifo(fifo)
        proxy.cut()
        with pytest.raises(swerexd.DisconnectedError):
            await run
        with pytest.raises(swerexd.DisconnectedError):
            await rt.list_sessions()
        await rt.close()
        # The session itself lives on in the daemon, its command too.
        async with Runtime(daemon.url) as rt2:
            infos = {s.name: s for s in await rt2.list_sessions()}
            assert infos[name].state == "running"
            await rt2.run_in_session(BashInterruptAction(session=name))
            obs = await rt2.run_in_session(BashAction(command="echo alive", session=name))
            assert obs.output == "alive\n"
            await rt2.close_session(CloseBashSessionRequest(session=name))
    finally:
        await proxy.close()


async def test_restarted_daemon_fails_what_may_have_run(name, tmp):
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    first = swerexd.local()
    await asyncio.get_running_loop().run_in_executor(None, first.start)
    proxy = Proxy(os.path.join(tmp, "proxy.sock"), first.socket)
    await proxy.start()
    second = swerexd.local()
    try:
        async with Runtime("unix:" + proxy.path) as rt:
            await rt.create_session(CreateBashSessionRequest(session=name))
            run = asyncio.ensure_future(rt.run_in_session(BashAction(
                command=f"echo started > {fifo}; sleep 60", session=name)))
            await _wait_fifo(fifo)
            # A new daemon that never knew this client takes over.
            await asyncio.get_running_loop().run_in_executor(None, second.start)
            proxy.upstream = second.socket
            proxy.cut()
            with pytest.raises(swerexd.DisconnectedError) as ei:
                await run
            assert "may or may not have run" in str(ei.value)
            assert await rt.list_sessions() == []
            assert rt.reconnects == 1
    finally:
        await proxy.close()
        first.stop()
        second.stop()

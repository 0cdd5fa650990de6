"""swerexd.local(): a private daemon started and stopped around a block."""

import os

import pytest

import swerexd
from swerexd import BashAction, Command, CreateBashSessionRequest


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sync_local_starts_and_stops(tmp):
    d = swerexd.local()
    with d as rt:
        assert isinstance(rt, swerexd.SyncRuntime)
        assert rt.is_alive()
        pid, dirname = d.pid, d.dir
        assert not _gone(pid)
        assert os.path.exists(d.socket)
        # A private HOME inside the daemon's directory, not the user's.
        r = rt.execute(Command("echo $HOME", shell=True))
        assert r.stdout == os.path.join(dirname, "home") + "\n"
        rt.create_session(CreateBashSessionRequest())
        assert rt.run_in_session(BashAction(command="echo hi")).output == "hi\n"
    # Stopped by pid and reaped, its directory removed.
    assert d.proc.returncode == 0
    assert _gone(pid)
    assert not os.path.exists(dirname)


async def test_async_local():
    d = swerexd.local()
    async with d as rt:
        assert isinstance(rt, swerexd.Runtime)
        r = await rt.execute(Command(["echo", "async"]))
        assert r.stdout == "async\n"
        assert d.listen == [d.url]
    assert d.proc.returncode == 0
    assert not os.path.exists(d.dir)


def test_local_start_failure_is_reported():
    with pytest.raises(swerexd.SwerexConnectionError) as ei:
        with swerexd.local(args=["--max-sessions", "not-a-number"]):
            pass
    assert "exited during start-up" in str(ei.value)


def test_local_given_home(tmp):
    with swerexd.local(home=tmp) as rt:
        assert rt.execute(Command("echo $HOME", shell=True)).stdout == tmp + "\n"

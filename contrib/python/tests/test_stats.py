"""Statistics and history through the Python client (async and sync)."""

import math

import pytest

from swerexd import (
    BashAction, CommandTimeoutError, CreateBashSessionRequest, Runtime,
    SessionDoesNotExistError, SyncRuntime,
)


async def test_stats_count_commands(url, name):
    async with Runtime(url, client_name="stats-test") as rt:
        before = await rt.stats()
        await rt.create_session(CreateBashSessionRequest(session=name))
        await rt.run_in_session(BashAction(command="echo a", session=name))
        await rt.run_in_session(BashAction(command="echo b", session=name))
        after = await rt.stats(prometheus=True)
    assert after.commands - before.commands == 2
    assert after.sessions_created - before.sessions_created == 1
    # create, 2 runs and the second stats request (other connections of
    # this shared daemon may ping meanwhile: exact per connection, below)
    assert after.requests - before.requests >= 4
    assert after.bytes_in > before.bytes_in and after.bytes_out > before.bytes_out
    assert after.command_latency_count == after.commands
    assert math.isinf(after.command_latency[-1].le)
    assert after.command_latency[-1].count == after.command_latency_count
    counts = [b.count for b in after.command_latency]
    assert counts == sorted(counts)
    assert after.daemon_version == rt.daemon_version
    assert after.prometheus.startswith("# HELP swerexd_")
    assert f"swerexd_commands_total {after.commands}\n" in after.prometheus
    mine = [c for c in after.connections if c.client_name == "stats-test"]
    assert len(mine) == 1 and mine[0].peer.startswith("unix:pid=")
    assert mine[0].requests == 1 + 5      # Hello, then the five above


async def test_history_in_order(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        await rt.run_in_session(BashAction(command="echo one", session=name))
        await rt.run_in_session(BashAction(command="(exit 4)", session=name, check="silent"))
        with pytest.raises(CommandTimeoutError):
            await rt.run_in_session(BashAction(command="sleep 0.5", session=name, timeout=0.1))
        h = await rt.history(name)
        assert h.total == 3
        assert [e.seq for e in h.entries] == [1, 2, 3]
        assert [e.command for e in h.entries] == ["echo one", "(exit 4)", "sleep 0.5"]
        assert h.entries[0].exit_code == 0 and h.entries[0].output_bytes == 4
        assert h.entries[1].exit_code == 4 and h.entries[1].failure_reason == ""
        assert h.entries[2].failure_reason == "timeout"
        last = await rt.history(name, limit=1)
        assert [e.seq for e in last.entries] == [3] and last.total == 3
        with pytest.raises(SessionDoesNotExistError):
            await rt.history(name + "-missing")


def test_sync_stats_and_history(url, name):
    with SyncRuntime(url) as rt:
        rt.create_session(CreateBashSessionRequest(session=name))
        rt.run_in_session(BashAction(command="true", session=name))
        s = rt.stats()
        assert s.commands >= 1 and s.sessions["idle"] >= 1
        h = rt.history(name)
        assert [(e.command, e.exit_code) for e in h.entries] == [("true", 0)]

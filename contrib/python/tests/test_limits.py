"""Per-session limits through the Python client: rlimits seen by the shell,
LimitExceededError when one ends a command, refusals of bad or unusable
limits."""

import os

import pytest

import swerexd
from swerexd import (
    BashAction, CloseBashSessionRequest, CreateBashSessionRequest, InvalidRequestError,
    LimitExceededError, ResourceExhaustedError, Runtime, SessionLimits, SyncRuntime,
)


async def test_limits_seen_and_cpu_loop_stopped(url, name):
    limits = SessionLimits(cpu_seconds=1, file_size=8192, address_space=2 << 30, nproc=400)
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name, limits=limits))
        obs = await rt.run_in_session(BashAction(
            command="ulimit -St; ulimit -Ht; ulimit -f; ulimit -v; ulimit -u", session=name))
        assert obs.output == "1\n2\n8\n2097152\n400\n"
        with pytest.raises(LimitExceededError) as ei:
            await rt.run_in_session(BashAction(command="( while :; do :; done )", session=name,
                                               check="silent", timeout=60))
        e = ei.value
        assert isinstance(e, RuntimeError) and e.kind == "LIMIT_EXCEEDED"
        assert e.extra_info["limit"] == "cpu" and e.extra_info["value"] == "1"
        assert e.observation.exit_code == 152
        obs = await rt.run_in_session(BashAction(command="echo next", session=name))
        assert obs.output == "next\n"
        await rt.close_session(CloseBashSessionRequest(session=name))


def test_file_size_sync(url, name, tmp):
    path = os.path.join(tmp, "big")
    with SyncRuntime(url) as rt:
        rt.create_session(CreateBashSessionRequest(session=name,
                                                   limits=SessionLimits(file_size=4096)))
        with pytest.raises(LimitExceededError) as ei:
            rt.run_in_session(BashAction(command=f"head -c 100000 /dev/zero > '{path}'",
                                         session=name))
        assert ei.value.extra_info["limit"] == "file_size"
        assert ei.value.extra_info["exit_code"] == "153"
        assert os.path.getsize(path) == 4096
        rt.close_session(CloseBashSessionRequest(session=name))


async def test_zero_is_refused(url, name):
    async with Runtime(url) as rt:
        with pytest.raises(InvalidRequestError) as ei:
            await rt.create_session(CreateBashSessionRequest(
                session=name, limits=SessionLimits(nproc=0)))
        assert ei.value.extra_info["limit"] == "nproc"


async def test_memory_refused_without_cgroup(name):
    async with swerexd.local(args=["--cgroup", "none"]) as rt:
        with pytest.raises(ResourceExhaustedError) as ei:
            await rt.create_session(CreateBashSessionRequest(
                session=name, limits=SessionLimits(memory=64 << 20)))
        assert ei.value.extra_info["limit"] == "memory"
        assert "cgroup" in str(ei.value)

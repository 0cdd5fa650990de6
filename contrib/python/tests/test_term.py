"""Terminal features through the Python client: the no-output timeout and
wait, terminal size and resize, the session's environment and directory."""

import os

import pytest

from swerexd import (
    BashAction, CommandTimeoutError, CreateBashSessionRequest, InvalidRequestError,
    NoOutputTimeoutError, RemoteFileNotFoundError, Runtime, SyncRuntime,
)


async def test_no_output_timeout_then_wait(url, name, tmp_path):
    go = tmp_path / "go"
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        cmd = f"echo start; while [ ! -e '{go}' ]; do sleep 0.05; done; echo end; (exit 3)"
        with pytest.raises(NoOutputTimeoutError) as ei:
            await rt.run_in_session(BashAction(command=cmd, session=name,
                                               no_output_timeout=0.3, check="silent"))
        assert isinstance(ei.value, CommandTimeoutError)
        assert ei.value.observation.output == "start\n"
        assert ei.value.observation.failure_reason == "no_output_timeout"
        assert ei.value.extra_info["timeout"] == "0.3"
        states = {s.name: s.state for s in await rt.list_sessions()}
        assert states[name] == "running"
        go.touch()
        obs = await rt.run_in_session(BashAction(command="", session=name, wait=True,
                                                 check="silent", timeout=30))
        assert obs.output == "end\n"
        assert obs.exit_code == 3


async def test_steady_output_is_not_cut(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        # Pauses without a fork each ("read -t" on the idle terminal): a
        # loaded machine stretches them less than sleep(1)'s.
        obs = await rt.run_in_session(BashAction(
            command="for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; read -t 0.1; done; true",
            session=name, no_output_timeout=1.0))
        assert obs.output.split() == [str(i) for i in range(1, 11)]


async def test_wait_on_idle_session(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        await rt.run_in_session(BashAction(command="(exit 2)", session=name, check="silent"))
        obs = await rt.run_in_session(BashAction(command="", session=name, wait=True))
        assert obs.output == "" and obs.exit_code == 2


async def test_size_and_resize(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name, rows=24, cols=90))
        obs = await rt.run_in_session(BashAction(command="stty size", session=name))
        assert obs.output == "24 90\n"
        await rt.resize(name, 33, 120)
        obs = await rt.run_in_session(BashAction(command="stty size", session=name))
        assert obs.output == "33 120\n"
        with pytest.raises(InvalidRequestError):
            await rt.resize(name, 0, 80)
        with pytest.raises(InvalidRequestError):
            await rt.create_session(CreateBashSessionRequest(session=name + "-big", cols=10001))


async def test_env_and_cwd(url, name, tmp_path):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(
            session=name, env={"GREETING": "hi there"}, cwd=str(tmp_path)))
        obs = await rt.run_in_session(BashAction(command='echo "$GREETING"; pwd -P',
                                                 session=name))
        assert obs.output == f"hi there\n{os.path.realpath(tmp_path)}\n"
        with pytest.raises(InvalidRequestError):
            await rt.create_session(CreateBashSessionRequest(
                session=name + "-ps1", env={"PS1": "$ "}))
        with pytest.raises(InvalidRequestError):
            await rt.create_session(CreateBashSessionRequest(
                session=name + "-bad", env={"NOT-A-NAME": "x"}))
        with pytest.raises(RemoteFileNotFoundError):
            await rt.create_session(CreateBashSessionRequest(
                session=name + "-cwd", cwd=str(tmp_path / "missing")))


def test_sync_resize_and_wait(url, name):
    with SyncRuntime(url) as rt:
        rt.create_session(CreateBashSessionRequest(session=name))
        rt.resize(name, 20, 70)
        assert rt.run_in_session(BashAction(command="stty size", session=name)).output == "20 70\n"
        assert rt.run_in_session(BashAction(command="", session=name, wait=True)).exit_code == 0

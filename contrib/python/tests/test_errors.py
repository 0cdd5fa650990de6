"""Errors: each daemon ErrorKind arrives as its exception class, with details."""

import asyncio
import dataclasses
import os

import pytest

import swerexd
from swerexd import (
    BashAction, BashInterruptAction, CloseBashSessionRequest, CreateBashSessionRequest,
    Runtime, WriteFileRequest,
)


async def test_session_died(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        with pytest.raises(swerexd.SessionDiedError) as ei:
            await rt.run_in_session(BashAction(command="exit 7", session=name))
        with pytest.raises(swerexd.SessionDiedError) as ei:
            await rt.run_in_session(BashAction(command="true", session=name))
        assert "exit_status" in ei.value.extra_info
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_interrupt_cuts_a_pending_run(url, name, tmp):
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        run = asyncio.ensure_future(rt.run_in_session(BashAction(
            command=f"echo partial; echo started > {fifo}; sleep 60", session=name)))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: open(fifo).read())
        obs = await rt.run_in_session(BashInterruptAction(session=name))
        with pytest.raises(swerexd.CommandInterruptedError) as ei:
            await run
        # The cut run's output is in its error's observation.
        assert ei.value.observation.output == "partial\n"
        assert obs.exit_code == 130
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_file_error_kinds(url, tmp):
    blocker = os.path.join(tmp, "file")
    open(blocker, "w").close()
    async with Runtime(url) as rt:
        with pytest.raises(IsADirectoryError):
            await rt.write_file(WriteFileRequest(content="x", path=tmp))
        with pytest.raises(NotADirectoryError) as ei:
            await rt.write_file(WriteFileRequest(content="x", path=os.path.join(blocker, "sub")))
        assert isinstance(ei.value, swerexd.SwerexException)
        assert ei.value.extra_info.get("errno") == "ENOTDIR"


async def test_request_above_frame_limit_is_refused_locally(tmp):
    async with swerexd.local(args=["--max-frame", "65536"]) as rt:
        with pytest.raises(swerexd.InvalidRequestError):
            await rt.write_file(WriteFileRequest(content=b"x" * 100000,
                                                 path=os.path.join(tmp, "big")))
        # Nothing was sent: the connection still works.
        assert await rt.is_alive()


def test_models_match_swerex_fields():
    """Field names and defaults of SWE-ReX's models (swerex.runtime.abstract)."""
    def fields(cls):
        return {f.name: (f.default if f.default is not dataclasses.MISSING else
                         f.default_factory() if f.default_factory is not dataclasses.MISSING
                         else "required") for f in dataclasses.fields(cls)}
    a = fields(swerexd.BashAction)
    assert {k: a[k] for k in ("command", "session", "timeout", "is_interactive_command",
                              "is_interactive_quit", "check", "error_msg", "expect",
                              "action_type")} == {
        "command": "required", "session": "default", "timeout": None,
        "is_interactive_command": False, "is_interactive_quit": False, "check": "raise",
        "error_msg": "", "expect": [], "action_type": "bash"}
    assert fields(swerexd.BashInterruptAction) == {
        "session": "default", "timeout": 0.2, "n_retry": 3, "expect": [],
        "action_type": "bash_interrupt"}
    c = fields(swerexd.Command)
    assert {k: c[k] for k in ("command", "timeout", "shell", "check", "error_msg", "env",
                              "cwd", "merge_output_streams")} == {
        "command": "required", "timeout": None, "shell": False, "check": False,
        "error_msg": "", "env": None, "cwd": None, "merge_output_streams": False}
    assert list(fields(swerexd.BashObservation))[:5] == [
        "output", "exit_code", "failure_reason", "expect_string", "session_type"]
    assert list(fields(swerexd.WriteFileRequest))[:2] == ["content", "path"]
    assert list(fields(swerexd.UploadRequest)) == ["source_path", "target_path"]
    assert list(fields(swerexd.ReadFileRequest)) == ["path", "encoding", "errors"]
    assert swerexd.CreateSessionRequest is swerexd.CreateBashSessionRequest
    # SWE-ReX's exception bases, so existing except clauses still match.
    assert issubclass(swerexd.CommandTimeoutError, TimeoutError)
    assert issubclass(swerexd.SessionDoesNotExistError, ValueError)
    assert issubclass(swerexd.NonZeroExitCodeError, RuntimeError)
    e = swerexd.BashIncorrectSyntaxError("m", extra_info={"bash_stdout": ""})
    assert e.extra_info == {"bash_stdout": ""} and str(e) == "m"

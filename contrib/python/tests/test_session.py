"""Session semantics through the Python client: state, check, errors,
timeouts, interrupts, interactive programs, startup files."""

import os

import pytest

from swerexd import (
    BashAction, BashIncorrectSyntaxError, BashInterruptAction, CloseBashSessionRequest,
    CommandTimeoutError, CreateBashSessionRequest, NonZeroExitCodeError, Runtime,
    SessionBusyError, SessionDoesNotExistError, SessionExistsError, SwerexException,
)


async def test_state_persists_and_close_ends_session(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        obs = await rt.run_in_session(BashAction(command="cd /tmp && export SWX=42", session=name))
        assert obs.exit_code == 0 and obs.output == ""
        obs = await rt.run_in_session(BashAction(command="echo $SWX; pwd", session=name))
        assert obs.output == "42\n/tmp\n"
        assert obs.exit_code == 0
        await rt.close_session(CloseBashSessionRequest(session=name))
        with pytest.raises(SessionDoesNotExistError) as ei:
            await rt.run_in_session(BashAction(command="true", session=name))
        assert isinstance(ei.value, ValueError)      # SWE-ReX's bases
        assert ei.value.kind == "SESSION_DOES_NOT_EXIST"


async def test_session_exists(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        with pytest.raises(SessionExistsError):
            await rt.create_session(CreateBashSessionRequest(session=name))
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_check_raise_silent_ignore(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        with pytest.raises(NonZeroExitCodeError) as ei:
            await rt.run_in_session(BashAction(command="echo out; exit_with() { return $1; }; exit_with 3",
                                               session=name, error_msg="building failed"))
        e = ei.value
        assert isinstance(e, RuntimeError) and isinstance(e, SwerexException)
        assert e.extra_info["exit_code"] == "3"
        assert e.observation.output == "out\n" and e.observation.exit_code == 3
        assert str(e).startswith("building failed")
        obs = await rt.run_in_session(BashAction(command="(exit 5)", session=name, check="silent"))
        assert obs.exit_code == 5
        obs = await rt.run_in_session(BashAction(command="(exit 5)", session=name, check="ignore"))
        assert obs.exit_code is None
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_syntax_error_runs_nothing(url, name, tmp):
    marker = os.path.join(tmp, "ran")
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        with pytest.raises(BashIncorrectSyntaxError) as ei:
            await rt.run_in_session(BashAction(command=f"touch {marker}; if then fi", session=name))
        assert "syntax error" in ei.value.extra_info["bash_stderr"]
        assert "bash_stdout" in ei.value.extra_info
        assert not os.path.exists(marker)
        obs = await rt.run_in_session(BashAction(command="echo still here", session=name))
        assert obs.output == "still here\n"
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_timeout_busy_interrupt(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        with pytest.raises(CommandTimeoutError) as ei:
            await rt.run_in_session(BashAction(command="echo started; sleep 60", session=name, timeout=0.5))
        assert isinstance(ei.value, TimeoutError)
        assert ei.value.observation.output == "started\n"
        with pytest.raises(SessionBusyError):
            await rt.run_in_session(BashAction(command="true", session=name))
        obs = await rt.run_in_session(BashInterruptAction(session=name))
        assert obs.exit_code == 130
        obs = await rt.run_in_session(BashAction(command="echo after", session=name))
        assert obs.output == "after\n"
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_interactive_program_with_expect(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        obs = await rt.run_in_session(BashAction(
            command="read -p 'name? ' who; echo hello $who", session=name,
            expect=["name? "], timeout=30))
        assert obs.expect_string == "name? "
        assert obs.exit_code is None
        obs = await rt.run_in_session(BashAction(
            command="bob", session=name, is_interactive_quit=True, timeout=30))
        assert "hello bob" in obs.output
        obs = await rt.run_in_session(BashAction(command="echo $?", session=name))
        assert obs.output == "0\n"
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_startup_source(url, name, tmp):
    rc = os.path.join(tmp, "env.sh")
    with open(rc, "w") as f:
        f.write("echo sourcing\nexport SWX_STARTUP=yes\n")
    async with Runtime(url) as rt:
        r = await rt.create_session(CreateBashSessionRequest(session=name, startup_source=[rc]))
        assert "sourcing" in r.output
        obs = await rt.run_in_session(BashAction(command="echo $SWX_STARTUP", session=name))
        assert obs.output == "yes\n"
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_output_is_bytes_faithful_and_capped(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        obs = await rt.run_in_session(BashAction(command=r"printf 'caf\xc3\xa9 \xff\n'", session=name))
        assert obs.output == "café \\xff\n"
        obs = await rt.run_in_session(BashAction(command="head -c 100000 /dev/zero | tr '\\0' x",
                                                 session=name, max_output=1000))
        assert obs.truncated and obs.output_bytes == 100000
        assert len(obs.output) < 2000 and "truncated" in obs.output
        await rt.close_session(CloseBashSessionRequest(session=name))


async def test_list_sessions(url, name):
    async with Runtime(url) as rt:
        await rt.create_session(CreateBashSessionRequest(session=name))
        await rt.run_in_session(BashAction(command="echo listed", session=name))
        infos = {s.name: s for s in await rt.list_sessions()}
        assert infos[name].state == "idle"
        assert infos[name].pid > 0
        assert infos[name].last_command == "echo listed"
        await rt.close_session(CloseBashSessionRequest(session=name))
        assert name not in {s.name for s in await rt.list_sessions()}

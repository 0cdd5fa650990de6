"""One-off commands (SWE-ReX's execute / Command)."""

import os

import pytest

from swerexd import (
    Command, CommandTimeoutError, NonZeroExitCodeError, RemoteFileNotFoundError, Runtime,
)


async def test_argv_streams_and_exit_code(url):
    async with Runtime(url) as rt:
        r = await rt.execute(Command(["sh", "-c", 'echo "$0 out"; echo err >&2; exit 3', "a b"]))
        assert r.stdout == "a b out\n"
        assert r.stderr == "err\n"
        assert r.exit_code == 3


async def test_shell_string(url):
    async with Runtime(url) as rt:
        r = await rt.execute(Command("echo $((6*7)) | tr 4 x", shell=True))
        assert r.stdout == "x2\n" and r.exit_code == 0


async def test_check_raises_with_response(url):
    async with Runtime(url) as rt:
        with pytest.raises(NonZeroExitCodeError) as ei:
            await rt.execute(Command(["sh", "-c", "echo partial; exit 4"], check=True,
                                     error_msg="setup failed"))
        assert ei.value.response.stdout == "partial\n"
        assert ei.value.response.exit_code == 4
        assert ei.value.extra_info["exit_code"] == "4"
        assert str(ei.value).startswith("setup failed")


async def test_timeout_kills_the_group(url, tmp):
    marker = os.path.join(tmp, "survivor")
    async with Runtime(url) as rt:
        with pytest.raises(CommandTimeoutError) as ei:
            await rt.execute(Command(f"echo begun; (sleep 2; touch {marker}) & sleep 60",
                                     shell=True, timeout=0.5))
        assert isinstance(ei.value, TimeoutError)
        assert ei.value.response.stdout == "begun\n"
        assert ei.value.response.failure_reason == "timeout"
        # The background child was in the killed group: it never touches.
        r = await rt.execute(Command(["sh", "-c", f"sleep 2.5; test -e {marker}"]))
        assert r.exit_code == 1


async def test_env_cwd_stdin_merge(url, tmp):
    async with Runtime(url) as rt:
        r = await rt.execute(Command(["/usr/bin/env"], env={"ONLY": "this"}))
        assert r.stdout == "ONLY=this\n"
        r = await rt.execute(Command(["pwd"], cwd=tmp))
        assert r.stdout == tmp + "\n"
        r = await rt.execute(Command(["tr", "a-z", "A-Z"], stdin="shout\n"))
        assert r.stdout == "SHOUT\n"
        r = await rt.execute(Command("echo 1; echo 2 >&2; echo 3", shell=True,
                                     merge_output_streams=True))
        assert r.stdout == "1\n2\n3\n" and r.stderr == ""


async def test_missing_program(url):
    if os.environ.get("SWEREX_VALGRIND_DIR"):
        pytest.skip("valgrind: posix_spawn cannot report exec errors")
    async with Runtime(url) as rt:
        with pytest.raises(FileNotFoundError) as ei:
            await rt.execute(Command(["/nonexistent/swx-program"]))
        assert isinstance(ei.value, RemoteFileNotFoundError)

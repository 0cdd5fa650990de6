"""Fixtures for the Python client's tests, and TAP output.

Every test talks to a real swerexd ($SWEREXD, else the build tree's) started
by swerexd.local(): a private daemon on a socket in a temporary directory,
with a private HOME. Coroutine tests run in a fresh event loop each, bounded
in time. Each test prints one TAP line ("ok N - name" or "not ok N - name"),
which ./contrib/dev.sh test counts; a skipped test prints "ok N - name # SKIP
why", which counts neither way (the project's convention).
"""

import asyncio
import inspect
import itertools
import os
import sys

import pytest

import swerexd

TEST_TIMEOUT = 120.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests in their own loop, within TEST_TIMEOUT."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {n: pyfuncitem.funcargs[n] for n in names}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), TEST_TIMEOUT))
    return True


@pytest.fixture(scope="session")
def daemon():
    """One private swerexd for the tests that need nothing special; it must
    exit cleanly (status 0: no sanitizer report) when stopped."""
    d = swerexd.local()
    d.start()
    yield d
    d.stop()
    assert d.proc.returncode == 0, f"swerexd exited with {d.proc.returncode}:\n{d.exit_log}"


@pytest.fixture
def diag(request):
    """Add TAP comment lines ("# ..."), printed before the test's TAP line
    (output during the test itself is captured)."""
    def write(text):
        _tap["diag"].setdefault(request.node.nodeid, []).extend(text.splitlines())
    return write


@pytest.fixture
def url(daemon):
    return daemon.url


_names = itertools.count(1)


@pytest.fixture
def name(request):
    """A session name no other test uses."""
    return f"{request.node.name[:40]}-{next(_names)}"


@pytest.fixture
def tmp(tmp_path):
    return str(tmp_path)


# TAP ---------------------------------------------------------------------

_tap = {"n": 0, "failed": {}, "skipped": {}, "diag": {}}


def _write(config, line):
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        # The progress column ("[100%]") may have left the line open.
        if tr._tw.width_of_current_line:
            tr._tw.line()
        tr.write_line(line)
    else:
        sys.stdout.write(line + "\n")


def pytest_collection_finish(session):
    _write(session.config, f"1..{len(session.items)}")


def pytest_report_teststatus(report, config):
    """No progress letters: the TAP lines say it all."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        return report.outcome, "", report.outcome.upper()
    return None


def pytest_runtest_logreport(report):
    if report.failed:
        _tap["failed"][report.nodeid] = report.when
    elif report.skipped:
        _tap["skipped"][report.nodeid] = str(report.longrepr[-1]) if isinstance(
            report.longrepr, tuple) else "skipped"


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid, location):
    """One TAP line per test, once its teardown is done too."""
    _tap["n"] += 1
    n = _tap["n"]
    title = nodeid.split("::", 1)[-1]
    module = os.path.basename(nodeid.split("::", 1)[0]).removesuffix(".py")
    if nodeid in _tap["failed"]:
        line = f"not ok {n} - python {module}: {title} (failed in {_tap['failed'][nodeid]})"
    elif nodeid in _tap["skipped"]:
        line = f"ok {n} - python {module}: {title} # SKIP {_tap['skipped'][nodeid]}"
    else:
        line = f"ok {n} - python {module}: {title}"
    for d in _tap["diag"].pop(nodeid, []):
        _write(_config, "# " + d)
    _write(_config, line)


_config = None


def pytest_configure(config):
    global _config
    _config = config

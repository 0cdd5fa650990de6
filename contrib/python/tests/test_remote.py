"""Addresses, tokens, TLS and connection errors."""

import os
import subprocess

import pytest

import swerexd
from swerexd import Command, Runtime
from swerexd.connection import resolve

TOKEN = "py-test-token-0123456789"


def test_url_syntax(monkeypatch):
    monkeypatch.delenv("SWEREX_URL", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert resolve(None).path == "/run/user/7/swerexd.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert resolve(None).path == f"/tmp/swerexd-{os.getuid()}/swerexd.sock"
    monkeypatch.setenv("SWEREX_URL", "unix:/x/y.sock")
    assert resolve(None).path == "/x/y.sock"
    assert resolve("unix:///a/b").path == "/a/b"
    assert resolve("/a/b").path == "/a/b"
    t = resolve("tls://[::1]:7443")
    assert (t.kind, t.host, t.port, t.addr) == ("tls", "::1", 7443, "[::1]:7443")
    t = resolve("tcp://127.0.0.1:9")
    assert (t.kind, t.host, t.port) == ("tcp", "127.0.0.1", 9)
    for bad in ("http://x:1", "tcp://nohost", "tls://h:99999", "unix:"):
        with pytest.raises(ValueError):
            resolve(bad)


async def test_unreachable_daemon(tmp):
    rt = Runtime("unix:" + os.path.join(tmp, "none.sock"))
    r = await rt.is_alive()
    assert not r and "cannot connect" in r.message
    with pytest.raises(swerexd.SwerexConnectionError):
        await rt.execute(Command(["true"]))
    await rt.close()


@pytest.fixture(scope="module")
def tcp_daemon():
    env = dict(os.environ, SWEREXD_TOKEN=TOKEN)
    d = swerexd.local(args=["--listen", "tcp://127.0.0.1:0", "--insecure"], env=env)
    d.start()
    yield d
    d.stop()


def _tcp_url(d):
    return next(a for a in d.listen if a.startswith("tcp://"))


async def test_tcp_token(tcp_daemon, tmp, monkeypatch):
    url = _tcp_url(tcp_daemon)
    monkeypatch.delenv("SWEREX_TOKEN", raising=False)
    monkeypatch.delenv("SWEREX_TOKEN_FILE", raising=False)
    async with Runtime(url, token=TOKEN) as rt:
        assert (await rt.execute(Command(["echo", "tcp"]))).stdout == "tcp\n"
    with pytest.raises(swerexd.UnauthenticatedError):
        async with Runtime(url, token="wrong"):
            pass
    # SWE-ReX's name for it, and the environment, as libswerex reads it.
    async with Runtime(url, auth_token=TOKEN) as rt:
        assert await rt.is_alive()
    monkeypatch.setenv("SWEREX_TOKEN", TOKEN)
    async with Runtime(url) as rt:
        assert await rt.is_alive()
    monkeypatch.delenv("SWEREX_TOKEN")
    path = os.path.join(tmp, "token")
    with open(path, "w") as f:
        f.write(TOKEN + "\n")
    monkeypatch.setenv("SWEREX_TOKEN_FILE", path)
    async with Runtime(url) as rt:
        assert await rt.is_alive()


async def test_tls(tmp, monkeypatch):
    script = os.environ.get("SWEREX_CERTS")
    assert script, "SWEREX_CERTS (contrib/swerex-certs.sh) is not set"
    certs = os.path.join(tmp, "certs")
    subprocess.run([script, certs], check=True, capture_output=True, timeout=60)
    token = open(os.path.join(certs, "token")).read().strip()
    args = ["--listen", "tls://127.0.0.1:0", "--tls-cert", os.path.join(certs, "server.pem"),
            "--tls-key", os.path.join(certs, "server.key"),
            "--token-file", os.path.join(certs, "token")]
    d = swerexd.local(args=args)
    d.start()
    try:
        url = next(a for a in d.listen if a.startswith("tls://"))
        ca = os.path.join(certs, "ca.pem")
        async with Runtime(url, token=token, ca=ca) as rt:
            assert (await rt.execute(Command(["echo", "tls"]))).stdout == "tls\n"
        # A host name the certificate has, through server_name.
        async with Runtime(url, token=token, ca=ca, server_name="localhost") as rt:
            assert await rt.is_alive()
        # The environment's CA, as libswerex reads it.
        monkeypatch.setenv("SWEREX_CA", ca)
        monkeypatch.setenv("SWEREX_TOKEN", token)
        async with Runtime(url) as rt:
            assert await rt.is_alive()
        monkeypatch.delenv("SWEREX_CA")
        # Without the CA the daemon's certificate is not trusted.
        with pytest.raises(swerexd.SwerexConnectionError) as ei:
            async with Runtime(url, token=token):
                pass
        assert "certificate" in str(ei.value).lower()
    finally:
        d.stop()

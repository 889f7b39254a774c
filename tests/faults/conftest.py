"""Shared pieces of the fault suite: the smoke dataset rendered once, damaged-file makers, a network block."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from tests.helpers import compose_stage


# ------------------------------------------------------------------------------------------- data
@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> Path:
    """The smoke preset's dataset, rendered once for the whole fault suite (read-only: copy before damaging)."""
    from reid_gan.data import build_dataset

    tmp = tmp_path_factory.mktemp("faults_smoke")
    cfg = compose_stage("train", tmp)
    return Path(build_dataset(cfg.data).root)


@pytest.fixture
def data_copy(smoke_data, tmp_path) -> Path:
    """A private copy of the smoke dataset (safe to damage)."""
    dst = tmp_path / "data"
    shutil.copytree(smoke_data, dst)
    return dst


# ------------------------------------------------------------------------------- damaged images
def zero_byte(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def truncated(p: Path) -> Path:
    """The first half of the JPEG: no end-of-image marker."""
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def corrupt(p: Path) -> Path:
    """JPEG start and end markers around garbage: passes the cheap header check, fails to decode."""
    p.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9")
    return p


DAMAGE = {"zero_byte": zero_byte, "truncated": truncated, "corrupt": corrupt}


# ------------------------------------------------------------------------------------- network
class NetworkAttempt(AssertionError):
    pass


LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost", "")

# Written by ``no_network`` into a temporary folder put first on the PYTHONPATH it gives child processes:
# Python imports ``sitecustomize`` at start-up (no other one is installed here), so every Python child
# (``python -m reid_gan.<stage>``, DataLoader workers, W&B's Python side) runs with the same block. A
# blocked attempt raises ``OSError(ENETUNREACH)`` there (what code sees offline) and is appended to the
# log file the fixture reads at teardown, so an attempt fails the test even when the child swallowed it.
CHILD_BLOCK = """
import errno as _errno, os as _os, socket as _socket

_LOG = _os.environ.get("REID_GAN_TEST_NETWORK_LOG")
_LOCAL = {local!r}


def _local_host(host):
    return host is None or str(host) in _LOCAL


def _blocked(what):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"{{_os.getpid()}} {{what}}\\n")
    raise OSError(_errno.ENETUNREACH, f"network blocked by the test suite: {{what}}")


def _remote(sock, address):
    if getattr(_socket, "AF_UNIX", None) is not None and sock.family == _socket.AF_UNIX:
        return False
    return not _local_host(address[0] if isinstance(address, tuple) else address)


_connect, _connect_ex, _create_connection, _getaddrinfo = (
    _socket.socket.connect, _socket.socket.connect_ex, _socket.create_connection, _socket.getaddrinfo)


def connect(sock, address):
    if _remote(sock, address):
        _blocked(address)
    return _connect(sock, address)


def connect_ex(sock, address):
    if _remote(sock, address):
        _blocked(address)
    return _connect_ex(sock, address)


def create_connection(address, *a, **k):
    if not _local_host(address[0]):
        _blocked(address)
    return _create_connection(address, *a, **k)


def getaddrinfo(host, *a, **k):  # a DNS query is network access too
    if not _local_host(host):
        _blocked(f"getaddrinfo({{host!r}})")
    return _getaddrinfo(host, *a, **k)


_socket.socket.connect, _socket.socket.connect_ex = connect, connect_ex
_socket.create_connection, _socket.getaddrinfo = create_connection, getaddrinfo
""".format(local=LOCAL_HOSTS)


class NetworkLog(list):
    """The attempts made in this process (the list) and, through :meth:`children`, in child processes."""

    def __init__(self, child_log: Path):
        super().__init__()
        self.child_log = child_log

    def children(self) -> list[str]:
        return self.child_log.read_text().splitlines() if self.child_log.exists() else []

    def clear(self) -> None:
        super().clear()
        self.child_log.unlink(missing_ok=True)


@pytest.fixture
def no_network(monkeypatch, tmp_path_factory):
    """Any connection attempt or name lookup for a non-local address fails the test (local sockets, e.g.
    W&B's own service process, are allowed), in this process and in every Python child process (through
    a ``sitecustomize`` on the children's PYTHONPATH); non-Python children get a dead proxy. Yields the
    :class:`NetworkLog`."""
    import os

    site = tmp_path_factory.mktemp("no_network")
    (site / "sitecustomize.py").write_text(CHILD_BLOCK)
    attempts = NetworkLog(site / "attempts.log")
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_create_connection, real_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def local(sock, address) -> bool:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return True
        host = address[0] if isinstance(address, tuple) else str(address)
        return host in LOCAL_HOSTS

    def blocked(what) -> None:
        attempts.append(str(what))
        raise NetworkAttempt(f"network access attempted: {what}")

    def connect(sock, address):
        if not local(sock, address):
            blocked(address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not local(sock, address):
            blocked(address)
        return real_connect_ex(sock, address)

    def create_connection(address, *a, **k):
        if address[0] not in LOCAL_HOSTS:
            blocked(address)
        return real_create_connection(address, *a, **k)

    def getaddrinfo(host, *a, **k):
        if host is not None and str(host) not in LOCAL_HOSTS:
            blocked(f"getaddrinfo({host!r})")
        return real_getaddrinfo(host, *a, **k)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("REID_GAN_TEST_NETWORK_LOG", str(attempts.child_log))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # the discard port: a request fails at once
    monkeypatch.setenv("NO_PROXY", "")
    yield attempts
    assert not attempts, f"network access attempted: {list(attempts)}"
    assert not attempts.children(), f"network access attempted by a child process: {attempts.children()}"

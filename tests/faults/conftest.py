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


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt to a non-local address fails the test (local sockets, e.g. W&B's own service
    process, are allowed). Yields the list of attempted addresses; child processes get a dead proxy."""
    attempts: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def local(sock, address) -> bool:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return True
        host = address[0] if isinstance(address, tuple) else str(address)
        return host in ("127.0.0.1", "::1", "localhost")

    def connect(sock, address):
        if not local(sock, address):
            attempts.append(str(address))
            raise NetworkAttempt(f"network access attempted: {address}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not local(sock, address):
            attempts.append(str(address))
            raise NetworkAttempt(f"network access attempted: {address}")
        return real_connect_ex(sock, address)

    def create_connection(address, *a, **k):
        if address[0] not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(str(address))
            raise NetworkAttempt(f"network access attempted: {address}")
        return real_create_connection(address, *a, **k)

    real_create_connection = socket.create_connection
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # the discard port: a child's request fails at once
    monkeypatch.setenv("NO_PROXY", "")
    yield attempts
    assert not attempts, f"network access attempted: {attempts}"

"""free_port picks ports that outgoing connections cannot take in the meantime."""

from __future__ import annotations

import socket

from services.launcher.redis_server import _ephemeral_range, free_port


def test_free_ports_lie_below_the_ephemeral_range_and_bind() -> None:
    low, _ = _ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(port < low for port in ports), sorted(ports)
    assert len(ports) > 1  # random, so parallel test processes do not pick the same one
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", ports.pop()))


def test_a_listening_port_is_never_returned() -> None:
    taken = []
    try:
        for _ in range(50):
            sock = socket.socket()
            sock.bind(("127.0.0.1", free_port()))
            sock.listen()
            taken.append(sock)
        ports = [s.getsockname()[1] for s in taken]
        assert len(set(ports)) == len(ports)
    finally:
        for sock in taken:
            sock.close()

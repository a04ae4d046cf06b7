"""Ports for test servers: never in the kernel's ephemeral range, never handed out twice."""

import socket

import pytest

from shared import natsserver
from shared.natsserver import LOWEST_PORT, ephemeral_ports, free_port


def test_free_ports_lie_below_the_ephemeral_range_are_distinct_and_bindable() -> None:
    # An outgoing connection can take an ephemeral port between the check and the server's
    # bind; this is what made a whole e2e module fail with "address already in use".
    low, _high = ephemeral_ports()
    ports = [free_port() for _ in range(50)]
    assert all(LOWEST_PORT <= port < low for port in ports)
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_port_a_listener_holds_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        for port in range(LOWEST_PORT + 123, LOWEST_PORT + 1000):
            try:
                listener.bind(("127.0.0.1", port))
                break
            except OSError:
                continue
        listener.listen()
        held = listener.getsockname()[1]
        draws = iter([held, held + 1000])  # the held port comes up first
        monkeypatch.setattr(natsserver._random, "randint", lambda _low, _high: next(draws))
        assert free_port() == held + 1000

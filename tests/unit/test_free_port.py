"""Free ports for the embedded stacks are drawn below the kernel's ephemeral range, where no
outgoing connection can take one as its source port before the child process binds it."""

from __future__ import annotations

import socket

from cli.stack import EPHEMERAL_RANGE, LOOPBACK, LOWEST_FREE_PORT, free_port


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    lowest_ephemeral = int(EPHEMERAL_RANGE.read_text().split()[0])
    ports = [free_port() for _ in range(100)]
    assert len(set(ports)) == 100
    assert all(LOWEST_FREE_PORT <= port < lowest_ephemeral for port in ports), ports
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, ports[-1]))

"""Loopback ports for tests and benchmarks."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A currently free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port

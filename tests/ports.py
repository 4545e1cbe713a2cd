"""Kept for ``tests/bench`` (``from tests.ports import free_port``); tests use
:mod:`tests.helpers.ports`."""

from tests.helpers.ports import free_port

__all__ = ["free_port"]

"""Shared test helpers: builders, polling, clocks, gateway fixtures, load clients.

Fixtures defined here are registered once through ``pytest_plugins`` in ``tests/conftest.py``;
test modules import plain helpers from here, never from other test modules.
"""

"""Fixtures of the browser tests of the order chat page (see tests/acceptance/web)."""

from tests.acceptance.web.fixtures import browser, web_bundles, world  # noqa: F401  (fixtures)

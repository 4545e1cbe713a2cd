"""The committed page (clients/web/dist) is what its sources build to.

``make run`` serves the page without Node, from the committed build; this rebuilds it from
the sources and the lockfile (npm, esbuild) and compares every file, byte for byte, as
``make web-check`` does.
"""

from __future__ import annotations

import pytest

from tests.acceptance.web.bundle import WEB, Bundles

pytestmark = pytest.mark.acceptance


def test_the_shipped_bundle_is_built_from_the_sources(web_bundles: Bundles) -> None:
    shipped = WEB / "dist"
    built = sorted(p.name for p in web_bundles.page.iterdir())
    assert sorted(p.name for p in shipped.iterdir()) == built
    stale = [
        name
        for name in built
        if (shipped / name).read_bytes() != (web_bundles.page / name).read_bytes()
    ]
    assert not stale, f"clients/web/dist is stale ({stale}): run 'make web' and commit"

"""The test suite's shared fixtures, registered once here.

Each lives in a module of :mod:`tests.helpers` (or the Stream double's fixtures); test
modules import plain helpers from :mod:`tests.helpers`, never from a conftest or another
test module.
"""

pytest_plugins = [
    "tests.helpers.gateways",
    "tests.helpers.pg",
    "tests.helpers.processes",
    "tests.helpers.raising",
    "tests.stream_double.fixtures",
]

"""Shared test helpers; each topic in one module, each helper defined once.

Plain helpers, imported by test modules:

- :mod:`~tests.helpers.builders`: order channels, proto participants and requests;
- :mod:`~tests.helpers.polling`: :func:`eventually`, the one polling loop;
- :mod:`~tests.helpers.clock`: :class:`FakeClock`, the one settable clock;
- :mod:`~tests.helpers.fakes`: in-memory registry and chat backend (the registry passes the
  registry contract suite);
- :mod:`~tests.helpers.fake_gateway`: a scriptable in-process ChatGateway server, for the
  client library's tests;
- :mod:`~tests.helpers.load`: :class:`OrderLoad`, the one load client;
- :mod:`~tests.helpers.rpc`: service-key metadata and status codes;
- :mod:`~tests.helpers.bridge`: HTTP bridge paths, session JWTs, JSON errors;
- :mod:`~tests.helpers.pki`: a throwaway PKI for TLS tests;
- :mod:`~tests.helpers.ports`: a free loopback port;
- :mod:`~tests.helpers.h2raw`: raw HTTP/2 (h2) for what the grpc client will not send:
  a gRPC call with arbitrary header bytes, the rapid-reset attacker.

Modules with fixtures, registered once through ``pytest_plugins`` in ``tests/conftest.py``:

- :mod:`~tests.helpers.gateways`: ``make_settings``, ``start_gateway`` (the one gateway
  fixture factory), ``gateway``, ``channel``, ``stub``;
- :mod:`~tests.helpers.processes`: the gateway as a real process (``gateway_children``);
- :mod:`~tests.helpers.pg`: throwaway PostgreSQL servers and databases;
- :mod:`~tests.helpers.raising`: a server whose every method raises what the test chooses.

Test modules import from here, never from a conftest or from another test module.
"""

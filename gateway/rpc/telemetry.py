"""Metrics and the access log of ChatGateway RPCs.

:class:`gateway.rpc.interceptor.GatewayInterceptor` records every guarded RPC's outcome
through a per-method :meth:`RpcTelemetry.recorder`. Health and reflection never pass
through it: no metrics, no access lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway import logs
from gateway.metrics import GatewayMetrics


class RpcTelemetry:
    """Measures and logs ChatGateway RPCs."""

    def __init__(self, *, metrics: GatewayMetrics, access_log: bool) -> None:
        self._metrics = metrics
        self._access_log = access_log and not logs.access_logger.disabled

    def recorder(self, method_name: str) -> Callable[[str, float, str], None]:
        """``record(code, started, reason)`` for RPCs of ``method_name``: counts the
        outcome, measures it from ``started`` (``time.perf_counter()``), logs the access
        line. Made once per method, so the hot path allocates nothing for a success."""
        cell = self._metrics.rpc_cell(method_name)
        ok = (method_name, "OK")
        access_log = self._access_log

        def record(code: str, started: float, reason: str) -> None:
            seconds = time.perf_counter() - started
            cell.observe(ok if code == "OK" else (method_name, code), seconds)
            if access_log and logs.access_logger.isEnabledFor(logging.INFO):
                logs.access(
                    "rpc",
                    {
                        "method": method_name,
                        "code": code,
                        "duration_ms": round(seconds * 1000, 3),
                        "service": logs.current_service(),
                        **({"reason": reason} if reason else {}),
                    },
                )

        return record

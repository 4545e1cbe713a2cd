"""Admission, metrics and the access log of ChatGateway RPCs.

:class:`gateway.rpc.interceptor.GatewayInterceptor` calls it around every guarded RPC:
:meth:`RpcObserver.admit` before the handler (its refusals are domain errors, mapped like
any other), a per-method :meth:`RpcObserver.recorder` with the outcome. Health and
reflection never pass through it: no cap, no drain refusal, no metrics, no access lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway import logs
from gateway.admission import Admission
from gateway.domain import OverloadedError, UnavailableError
from gateway.metrics import GatewayMetrics


class RpcObserver:
    """Caps concurrent ChatGateway RPCs, refuses them while draining, measures and logs."""

    def __init__(self, *, admission: Admission, metrics: GatewayMetrics, access_log: bool) -> None:
        self._admission = admission
        self._metrics = metrics
        self._access_log = access_log and not logs.access_logger.disabled

    def admit(self) -> None:
        """Count one more RPC in flight.

        Raises:
            UnavailableError: the gateway is draining.
            OverloadedError: the concurrent-RPC cap is reached.
        """
        admission = self._admission
        if admission.draining:
            raise UnavailableError("the gateway is shutting down; retry on another replica")
        if admission.rpcs >= admission.max_concurrent_rpcs:
            raise OverloadedError(
                f"more than {admission.max_concurrent_rpcs} RPCs in flight; retry shortly"
            )
        admission.rpcs += 1

    def release(self) -> None:
        """One admitted RPC finished."""
        admission = self._admission
        admission.rpcs -= 1
        if admission.draining:
            admission.release()

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
                logs.access_logger.info(
                    "rpc",
                    extra={
                        "method": method_name,
                        "code": code,
                        "duration_ms": round(seconds * 1000, 3),
                        "service": logs.current_service(),
                        **({"reason": reason} if reason else {}),
                    },
                )

        return record

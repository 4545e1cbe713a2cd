"""Domain errors -> gRPC status, once, for every guarded RPC; and one log line per failure."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway import logs
from gateway.domain import ErrorCode, GatewayError, InvalidArgumentError, RateLimitedError

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "chat.tradetrust.com"


def status_for(error: GatewayError) -> status_pb2.Status:
    """The rich ``google.rpc.Status`` for a domain error (AIP-193: ErrorInfo first)."""
    status = status_pb2.Status(code=grpc_code(error.code).value[0], message=error.message)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
    details: list[Any] = [info]
    if isinstance(error, InvalidArgumentError):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=error.field, description=error.description
                    )
                ]
            )
        )
    if isinstance(error, RateLimitedError):
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(int(error.retry_after_s * 1000))
        details.append(retry)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status


def grpc_code(code: ErrorCode) -> grpc.StatusCode:
    """The gRPC status of an error category (HTTP-only categories are INTERNAL here:
    domain errors never carry them)."""
    return grpc.StatusCode[code.grpc_status or "INTERNAL"]


async def abort_with(
    context: grpc.aio.ServicerContext[Any, Any], error: GatewayError, method_name: str
) -> NoReturn:
    """End the RPC with ``error``'s status and details (raises ``grpc.aio.AbortError``)."""
    status = rpc_status.to_status(status_for(error))
    # The access line (gateway.rpc.telemetry) already records each failed RPC with its code
    # and reason at INFO; this one is for debugging only, except for INTERNAL.
    level = logging.ERROR if error.code is ErrorCode.INTERNAL else logging.DEBUG
    logger.log(
        level,
        "rpc failed method=%s code=%s service=%s reason=%s",
        method_name,
        grpc_code(error.code).name,
        logs.current_service(),
        error.message,
    )
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable: context.abort raises")


async def abort_internal(context: grpc.aio.ServicerContext[Any, Any], method_name: str) -> NoReturn:
    """End the RPC as INTERNAL without detail; log the exception being handled."""
    logger.exception(
        "rpc failed method=%s code=INTERNAL service=%s", method_name, logs.current_service()
    )
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    raise AssertionError("unreachable: context.abort raises")

"""Domain errors -> gRPC status, once, for every RPC; and one log line per failed RPC."""

from __future__ import annotations

import logging
import re
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_interceptor import AsyncExceptionToStatusInterceptor
from grpc_status import rpc_status

from gateway.domain import ErrorCode, GatewayError, InvalidArgumentError, RateLimitedError
from gateway.rpc.auth import calling_service

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "chat.tradetrust.com"


def status_for(error: GatewayError) -> status_pb2.Status:
    """The rich ``google.rpc.Status`` for a domain error (AIP-193: ErrorInfo first)."""
    code: ErrorCode = error.code
    status = status_pb2.Status(code=grpc.StatusCode[code.name].value[0], message=error.message)
    info = error_details_pb2.ErrorInfo(
        reason=_upper_snake(type(error).__name__.removesuffix("Error")) or code.name,
        domain=ERROR_DOMAIN,
    )
    details: list[Any] = [info]
    if isinstance(error, InvalidArgumentError):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=error.field, description=error.reason
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


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


class ErrorMappingInterceptor(AsyncExceptionToStatusInterceptor):
    """Outermost interceptor: turns every exception into a precise status.

    Domain errors map through :class:`gateway.domain.ErrorCode`; anything else is logged
    with its traceback and reported as INTERNAL without detail.
    """

    async def handle_exception(
        self,
        ex: Exception,
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        method_name: str,
    ) -> NoReturn:
        if isinstance(ex, grpc.aio.AbortError):
            raise ex  # a handler (health, reflection) already set its status
        if isinstance(ex, GatewayError):
            status = rpc_status.to_status(status_for(ex))
            # The access line (gateway.rpc.observe) already records each failed RPC with its
            # code and reason at INFO; this one is for debugging only, except for INTERNAL.
            level = logging.ERROR if ex.code is ErrorCode.INTERNAL else logging.DEBUG
            logger.log(
                level,
                "rpc failed method=%s code=%s service=%s reason=%s",
                method_name,
                ex.code.name,
                calling_service.get() or "-",
                ex.message,
            )
            await context.abort(status.code, status.details, status.trailing_metadata)
        logger.exception(
            "rpc failed method=%s code=INTERNAL service=%s",
            method_name,
            calling_service.get() or "-",
        )
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable: context.abort raises")

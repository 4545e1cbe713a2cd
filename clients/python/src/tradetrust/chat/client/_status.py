"""Reads the rich ``google.rpc.Status`` the gateway puts in ``grpc-status-details-bin``.

The message types are declared here, wire-compatible with googleapis' ``google/rpc``
protos, in a private descriptor pool: the package then needs only ``protobuf`` (no
``googleapis-common-protos``) and cannot clash with those modules when they are installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

STATUS_DETAILS_KEY = "grpc-status-details-bin"
_PACKAGE = "tradetrust.chat.client.rpc"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="tradetrust/chat/client/rpc_status.proto", package=_PACKAGE, syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str | None, bool]) -> None:
        m = file.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            f = m.field.add(name=field_name, number=number, type=kind)
            f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if type_name:
                f.type_name = f".{_PACKAGE}.{type_name}"

    message(
        "Any",
        ("type_url", 1, _F.TYPE_STRING, None, False),
        ("value", 2, _F.TYPE_BYTES, None, False),
    )
    message(
        "Status",
        ("code", 1, _F.TYPE_INT32, None, False),
        ("message", 2, _F.TYPE_STRING, None, False),
        ("details", 3, _F.TYPE_MESSAGE, "Any", True),
    )
    message(
        "FieldViolation",
        ("field", 1, _F.TYPE_STRING, None, False),
        ("description", 2, _F.TYPE_STRING, None, False),
    )
    message("BadRequest", ("field_violations", 1, _F.TYPE_MESSAGE, "FieldViolation", True))
    message(
        "ErrorInfo",
        ("reason", 1, _F.TYPE_STRING, None, False),
        ("domain", 2, _F.TYPE_STRING, None, False),
    )
    return file


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())


def _cls(name: str) -> Any:
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


_Status, _BadRequestMsg, _ErrorInfoMsg = _cls("Status"), _cls("BadRequest"), _cls("ErrorInfo")


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field, from ``google.rpc.BadRequest``."""

    field: str
    description: str


@dataclass(frozen=True)
class RichStatus:
    """What the status details say (empty when there were none or they were unreadable)."""

    reason: str = ""
    """``google.rpc.ErrorInfo.reason``, e.g. ``ORDER_NOT_FOUND``."""
    domain: str = ""
    """``google.rpc.ErrorInfo.domain``."""
    field_violations: tuple[FieldViolation, ...] = ()
    """``google.rpc.BadRequest.field_violations``."""


def parse_status_details(metadata: Iterable[tuple[str, str | bytes]] | None) -> RichStatus:
    """The rich status from trailing metadata; never raises on malformed details."""
    raw = next(
        (v for k, v in metadata or () if k == STATUS_DETAILS_KEY and isinstance(v, bytes)), None
    )
    if raw is None:
        return RichStatus()
    try:
        status = _Status.FromString(raw)
        reason = domain = ""
        violations: list[FieldViolation] = []
        for detail in status.details:
            if detail.type_url == _ERROR_INFO and not reason:
                info = _ErrorInfoMsg.FromString(detail.value)
                reason, domain = str(info.reason), str(info.domain)
            elif detail.type_url == _BAD_REQUEST:
                bad = _BadRequestMsg.FromString(detail.value)
                violations.extend(
                    FieldViolation(str(v.field), str(v.description)) for v in bad.field_violations
                )
    except DecodeError:
        return RichStatus()
    return RichStatus(reason=reason, domain=domain, field_violations=tuple(violations))


def status_details_bytes(
    code: int,
    message: str,
    *,
    reason: str = "",
    domain: str = "",
    violations: Iterable[FieldViolation] = (),
) -> bytes:
    """Serialize a ``google.rpc.Status`` (for tests and fakes of the gateway)."""
    status = _Status(code=code, message=message)
    if reason:
        status.details.add(
            type_url=_ERROR_INFO,
            value=_ErrorInfoMsg(reason=reason, domain=domain).SerializeToString(),
        )
    violations = list(violations)
    if violations:
        bad = _BadRequestMsg()
        for v in violations:
            bad.field_violations.add(field=v.field, description=v.description)
        status.details.add(type_url=_BAD_REQUEST, value=bad.SerializeToString())
    data: bytes = status.SerializeToString()
    return data

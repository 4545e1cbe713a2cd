"""Stream app readiness: the app settings that make order chats work for users.

Read receipts need ``read_events`` on the order channel type, image attachments need
``uploads`` on it, and the app's upload configs must admit images only. Images go through
Stream's ``image_upload_config``; files sent with the client's ``sendFile`` go through
``file_upload_config``, so that one is held to images only too, or a user could attach any
file type. An upload config with an empty allow-list allows every type, so "images only"
means a non-empty allow-list of image MIME types and image extensions.

Used by ``python -m gateway check-stream [--apply]`` and, report-only, at startup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.chat import ChatBackendError

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_MIME_TYPES",
    "ReadinessReport",
    "StreamAdmin",
    "check_stream_app",
    "log_stream_readiness",
]

IMAGE_MIME_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/heic")
"""What ``--apply`` allows: common photo formats (no SVG: it can carry scripts)."""
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic")
"""File extensions matching :data:`IMAGE_MIME_TYPES`."""
_KNOWN_IMAGE_EXTENSIONS = frozenset(
    (*IMAGE_EXTENSIONS, ".bmp", ".tif", ".tiff", ".heif", ".avif", ".jfif")
)
_UPLOAD_CONFIGS = ("image_upload_config", "file_upload_config")
_CHANNEL_TYPE_FLAGS = ("read_events", "uploads")
# Stream's channel-type update requires these alongside any change; they are sent back as read.
_CHANNEL_TYPE_REQUIRED = ("automod", "automod_behavior", "max_message_length")


class StreamAdmin(Protocol):
    """The app-administration calls readiness needs (``StreamChatBackend`` has them)."""

    async def get_channel_type(self, name: str) -> dict[str, Any] | None:
        """The channel type's settings, or ``None`` if the app has no such type."""
        ...

    async def update_channel_type(self, name: str, **changes: Any) -> dict[str, Any]: ...

    async def get_app_settings(self) -> dict[str, Any]: ...

    async def update_app_settings(self, **changes: Any) -> dict[str, Any]: ...


@dataclass
class ReadinessReport:
    """What is wrong with the Stream app and what ``--apply`` changed.

    Attributes:
        problems: settings that are wrong now (after any fix: what is still wrong).
        applied: fixes made by this run.
    """

    problems: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


async def check_stream_app(
    admin: StreamAdmin, channel_type: str, *, apply: bool = False
) -> ReadinessReport:
    """Check (and with ``apply``, fix) the channel type and the app's upload configs.

    Raises:
        ChatBackendError: Stream could not be asked (or refused a fix).
    """
    report = ReadinessReport()
    await _check_channel_type(admin, channel_type, apply, report)
    await _check_uploads(admin, apply, report)
    return report


async def log_stream_readiness(admin: StreamAdmin, channel_type: str) -> bool:
    """Startup check: log what is wrong, never raise. Returns whether the app is ready."""
    try:
        report = await check_stream_app(admin, channel_type)
    except ChatBackendError as exc:
        logger.warning("stream app readiness unknown (cannot ask Stream): %s", exc)
        return False
    except Exception:
        logger.exception("stream app readiness check failed")
        return False
    for problem in report.problems:
        logger.warning(
            "stream app not ready: %s (run `python -m gateway check-stream --apply`)", problem
        )
    if report.ready:
        logger.info("stream app ready: channel type %r and upload settings", channel_type)
    return report.ready


async def _check_channel_type(
    admin: StreamAdmin, channel_type: str, apply: bool, report: ReadinessReport
) -> None:
    config = await admin.get_channel_type(channel_type)
    if config is None:
        report.problems.append(
            f"channel type {channel_type!r} does not exist; create it in the Stream dashboard"
        )
        return
    off = [flag for flag in _CHANNEL_TYPE_FLAGS if config.get(flag) is not True]
    if not off:
        return
    problem = f"channel type {channel_type!r} has {', '.join(off)} off"
    if not apply:
        report.problems.append(problem)
        return
    changes: dict[str, Any] = {k: config[k] for k in _CHANNEL_TYPE_REQUIRED if k in config}
    changes.update(dict.fromkeys(off, True))
    await admin.update_channel_type(channel_type, **changes)
    report.applied.append(f"channel type {channel_type!r}: turned on {', '.join(off)}")


async def _check_uploads(admin: StreamAdmin, apply: bool, report: ReadinessReport) -> None:
    app = (await admin.get_app_settings()).get("app") or {}
    fixes: dict[str, Any] = {}
    for name in _UPLOAD_CONFIGS:
        current = app.get(name) or {}
        wrong = _not_images_only(current)
        if wrong is None:
            continue
        if apply:
            fixes[name] = {
                **current,
                "allowed_mime_types": list(IMAGE_MIME_TYPES),
                "allowed_file_extensions": list(IMAGE_EXTENSIONS),
            }
        else:
            report.problems.append(f"app {name} {wrong}")
    if fixes:
        await admin.update_app_settings(**fixes)
        report.applied.extend(f"app {name}: allowed images only" for name in fixes)


def _not_images_only(config: dict[str, Any]) -> str | None:
    """Why an upload config admits more than images, or ``None`` if it does not."""
    mime_types = [str(m).strip().lower() for m in config.get("allowed_mime_types") or []]
    extensions = [
        "." + str(e).strip().lower().lstrip(".")
        for e in config.get("allowed_file_extensions") or []
    ]
    if not mime_types:
        return "allows every MIME type (allowed_mime_types is empty)"
    if not extensions:
        return "allows every file extension (allowed_file_extensions is empty)"
    other_types = [m for m in mime_types if not m.startswith("image/") or m == "image/svg+xml"]
    if other_types:
        return f"allows non-image MIME types {other_types}"
    other_exts = [e for e in extensions if e not in _KNOWN_IMAGE_EXTENSIONS]
    if other_exts:
        return f"allows non-image file extensions {other_exts}"
    return None

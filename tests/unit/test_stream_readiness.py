"""Readiness rules with a fake Stream admin port (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.chat import ChatBackendError
from gateway.chat.readiness import IMAGE_MIME_TYPES, check_stream_app, log_stream_readiness


class FakeStreamAdmin:
    """Holds one channel type and the app settings; records updates."""

    def __init__(self, channel_type: dict[str, Any] | None, app: dict[str, Any]) -> None:
        self.channel_type = channel_type
        self.app = app
        self.updates: list[tuple[str, dict[str, Any]]] = []

    async def get_channel_type(self, name: str) -> dict[str, Any] | None:
        return None if self.channel_type is None else dict(self.channel_type)

    async def update_channel_type(self, name: str, **changes: Any) -> dict[str, Any]:
        self.updates.append((f"channeltype:{name}", changes))
        return {}

    async def get_app_settings(self) -> dict[str, Any]:
        return {"app": self.app}

    async def update_app_settings(self, **changes: Any) -> dict[str, Any]:
        self.updates.append(("app", changes))
        return {}


def _images_only(**extra: Any) -> dict[str, Any]:
    return {
        "allowed_mime_types": ["image/jpeg", "image/png"],
        "allowed_file_extensions": ["jpg", ".PNG"],  # Stream accepts either spelling
        **extra,
    }


READY_TYPE = {"read_events": True, "uploads": True, "automod": "AI", "max_message_length": 42}
READY_APP = {"image_upload_config": _images_only(), "file_upload_config": _images_only()}


async def test_ready_app_has_no_problems_and_changes_nothing() -> None:
    admin = FakeStreamAdmin(READY_TYPE, READY_APP)
    report = await check_stream_app(admin, "messaging", apply=True)
    assert report.ready and report.applied == [] and admin.updates == []


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({}, "allows every MIME type"),
        ({"allowed_mime_types": ["image/png"]}, "allows every file extension"),
        (_images_only(allowed_mime_types=["image/svg+xml"]), "non-image MIME types"),
        (_images_only(allowed_mime_types=["image/png", "video/mp4"]), "non-image MIME types"),
        (_images_only(allowed_file_extensions=[".png", ".exe"]), "non-image file extensions"),
    ],
)
async def test_upload_configs_must_allow_images_only(config: dict[str, Any], reason: str) -> None:
    admin = FakeStreamAdmin(READY_TYPE, {**READY_APP, "image_upload_config": config})
    report = await check_stream_app(admin, "messaging")
    assert len(report.problems) == 1
    assert report.problems[0].startswith("app image_upload_config ")
    assert reason in report.problems[0]


async def test_apply_keeps_other_upload_settings_and_channel_type_fields() -> None:
    config = {"size_limit": 1024, "blocked_mime_types": ["image/svg+xml"]}
    admin = FakeStreamAdmin(
        {**READY_TYPE, "uploads": False}, {**READY_APP, "image_upload_config": config}
    )
    report = await check_stream_app(admin, "messaging", apply=True)

    assert report.ready
    channel_type_update, app_update = admin.updates
    assert channel_type_update == (
        "channeltype:messaging",
        {"automod": "AI", "max_message_length": 42, "uploads": True},
    )
    fixed = app_update[1]["image_upload_config"]
    assert fixed["size_limit"] == 1024 and fixed["blocked_mime_types"] == ["image/svg+xml"]
    assert fixed["allowed_mime_types"] == list(IMAGE_MIME_TYPES)
    assert "file_upload_config" not in app_update[1]


async def test_missing_channel_type_is_reported_not_raised() -> None:
    report = await check_stream_app(FakeStreamAdmin(None, READY_APP), "orders", apply=True)
    assert report.problems == [
        "channel type 'orders' does not exist; create it in the Stream dashboard"
    ]


async def test_startup_check_logs_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Down(FakeStreamAdmin):
        async def get_channel_type(self, name: str) -> dict[str, Any] | None:
            raise ChatBackendError("connection refused", transient=True)

    assert await log_stream_readiness(Down(READY_TYPE, READY_APP), "messaging") is False
    assert "readiness unknown" in caplog.text
    caplog.clear()
    admin = FakeStreamAdmin({**READY_TYPE, "read_events": False}, READY_APP)
    assert await log_stream_readiness(admin, "messaging") is False
    assert "has read_events off" in caplog.text and admin.updates == []

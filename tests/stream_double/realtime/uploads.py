"""Image uploads: ``POST /channels/{type}/{id}/image`` (multipart ``file``) and the public
``GET /uploads/{id}/{name}`` that serves them back, as Stream's CDN does.

Only images are taken (the declared type and the bytes must agree), up to the app's
``image_upload_config.size_limit`` (Stream's 100 MiB when unset).
"""

from __future__ import annotations

import re
import uuid
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from aiohttp import web

from tests.stream_double import StreamDouble, StreamError
from tests.stream_double.realtime.auth import UPLOADS_PREFIX
from tests.stream_double.realtime.state import RealtimeState, Upload

__all__ = ["serve_upload", "upload_image"]

DEFAULT_SIZE_LIMIT = 100 * 1024 * 1024
_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _file_part(content_type: str, raw: bytes) -> Message:
    if not content_type.startswith("multipart/form-data"):
        raise StreamError(
            400, 4, 'UploadImage failed with error: "body must be multipart/form-data"'
        )
    document = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    if not document.is_multipart():
        raise StreamError(400, 4, 'UploadImage failed with error: "multipart body is malformed"')
    for part in document.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part
    raise StreamError(400, 4, 'UploadImage failed with error: "file is a required field"')


def _is_image(content_type: str, data: bytes) -> bool:
    signatures = _SIGNATURES.get(content_type, ())
    if content_type == "image/webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return any(data.startswith(s) for s in signatures)


async def upload_image(
    double: StreamDouble, state: RealtimeState, request: web.Request, user_id: str
) -> str:
    """Store the request's image and return its public URL."""
    part = _file_part(request.headers.get("Content-Type", ""), await request.read())
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes) or not data:
        raise StreamError(400, 4, 'UploadImage failed with error: "file is empty"')
    content_type = part.get_content_type()
    if not _is_image(content_type, data):
        raise StreamError(
            400,
            4,
            f'UploadImage failed with error: "File type {content_type} is not an image '
            'this app accepts"',
        )
    config = double.app.get("image_upload_config") or {}
    limit = int(config.get("size_limit") or DEFAULT_SIZE_LIMIT)
    if len(data) > limit:
        raise StreamError(413, 4, f'UploadImage failed with error: "file is larger than {limit}"')
    name = _SAFE_NAME.sub("_", part.get_filename() or "image")[-100:] or "image"
    upload_id = uuid.uuid4().hex
    state.uploads[upload_id] = Upload(content_type, data, user_id)
    return f"{double.url}{UPLOADS_PREFIX}{upload_id}/{name}"


def serve_upload(state: RealtimeState, request: web.Request) -> web.Response:
    """An uploaded file by its URL; 404 for anything else."""
    upload_id = request.path[len(UPLOADS_PREFIX) :].split("/", 1)[0]
    upload = state.uploads.get(upload_id)
    if upload is None:
        raise StreamError(404, 16, "file not found")
    return web.Response(
        body=upload.data,
        content_type=upload.content_type,
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )

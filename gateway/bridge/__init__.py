"""The HTTP bridge for browsers: ``/api/chat/stream/token`` and ``/api/chat/stream/channel``.

aiohttp, on the gateway's event loop, calling the same :class:`gateway.service.ChatService`
as the gRPC edge. Module names avoid ``http`` and ``jwt`` so nothing shadows those packages.
"""

from gateway.bridge.handlers import Readiness
from gateway.bridge.ratelimit import TokenBucketLimiter
from gateway.bridge.server import BridgeEdge, build_bridge_app, build_bridge_edge
from gateway.bridge.session import SessionVerifier

__all__ = [
    "BridgeEdge",
    "Readiness",
    "SessionVerifier",
    "TokenBucketLimiter",
    "build_bridge_app",
    "build_bridge_edge",
]

"""The bridge's OpenAPI 3 document, written by hand to match the handlers.

The integration tests check the server against it with schemathesis (every response must
match), so a change to a handler that is not reflected here fails the build.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.domain import ErrorCode
from gateway.validation import MAX_ID_LENGTH

ERROR_CODES = [code.json_code for code in ErrorCode]
"""Every ``error.code`` the bridge can answer, from the one error table."""

_JSON = "application/json"


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _ok(description: str, schema: str, *, no_store: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if no_store:
        response["headers"] = {
            "Cache-Control": {
                "description": "always `no-store`",
                "required": True,
                "schema": {"type": "string", "enum": ["no-store"]},
            }
        }
    return response


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds until the next request may succeed",
        "required": True,
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    }
}

_AUTH_ERRORS = {
    "401": _error(
        "missing, malformed, forged, expired or not-yet-valid session",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "405": _error("method not allowed"),
}

_BODY_ERRORS = {
    "400": _error("invalid argument (the message names the field) or invalid JSON"),
    "413": _error("request body larger than 16 KiB"),
    "415": _error("request body is not application/json"),
    "408": _error("the request body did not arrive in time"),
}

_SECURITY: list[dict[str, list[str]]] = [{"sessionBearer": []}, {"sessionCookie": []}]

_TTL_SCHEMA = {
    "type": "integer",
    "minimum": 60,
    "maximum": 86400,
    "description": "token lifetime in seconds (default 24 h; at most the configured maximum)",
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "TradeTrust chat gateway: HTTP bridge",
        "version": "1.0.0",
        "description": (
            "Browser endpoints of the chat gateway. The user is the `sub` of the TradeTrust "
            "session JWT (bearer header or session cookie). Every error is "
            '`{"error": {"code", "message"}}`.'
        ),
    },
    "paths": {
        "/api/chat/stream/token": {
            "get": {
                "operationId": "getStreamToken",
                "summary": "A Stream user token for the session's user",
                "security": _SECURITY,
                "parameters": [
                    {"name": "ttl", "in": "query", "required": False, "schema": _TTL_SCHEMA}
                ],
                "responses": {
                    "200": _ok("a fresh token", "Token"),
                    "400": _error("ttl out of range or not a whole number"),
                    **_AUTH_ERRORS,
                    "429": _error("too many token requests for this user", _RETRY_AFTER),
                },
            },
            "post": {
                "operationId": "postStreamToken",
                "summary": "A Stream user token for the session's user (ttl in a JSON body)",
                "security": _SECURITY,
                "requestBody": {
                    "required": False,
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/TokenRequest"}}},
                },
                "responses": {
                    "200": _ok("a fresh token", "Token"),
                    **_BODY_ERRORS,
                    **_AUTH_ERRORS,
                    "429": _error("too many token requests for this user", _RETRY_AFTER),
                },
            },
        },
        "/api/chat/stream/channel": {
            "post": {
                "operationId": "openOrderChannel",
                "summary": "The order's chat channel, for its buyer, seller or support agent",
                "description": (
                    "A pending channel that is due gets one sync attempt first (shared by "
                    "concurrent requests, bounded). A closed order's channel still answers "
                    "200, with `state: closed`."
                ),
                "security": _SECURITY,
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/ChannelRequest"}}},
                },
                "responses": {
                    "200": _ok("the channel and the caller's role", "Channel"),
                    **_BODY_ERRORS,
                    **_AUTH_ERRORS,
                    "403": _error("the user is not the order's buyer, seller or support agent"),
                    "404": _error("no chat channel for this order"),
                    "429": _error("too many channel requests for this user", _RETRY_AFTER),
                    "503": _error("the registry cannot be reached"),
                },
            },
        },
        "/api/chat/stream/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3 document",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    },
                    "405": _error("method not allowed"),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "liveness",
                "summary": "Liveness",
                "responses": {
                    "200": _ok("the process answers", "Status"),
                    "405": _error("method not allowed"),
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readiness",
                "summary": "Readiness: started and the registry answers",
                "responses": {
                    "200": _ok("ready", "Status"),
                    "405": _error("method not allowed"),
                    "503": _error("not started, stopping, or the registry does not answer"),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "sessionBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "tt_session"},
        },
        "schemas": {
            "TokenRequest": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"ttl": _TTL_SCHEMA},
            },
            "Token": {
                "type": "object",
                "additionalProperties": False,
                "required": ["token", "expiresAt", "apiKey", "userId"],
                "properties": {
                    "token": {"type": "string", "description": "Stream user token (JWT)"},
                    "expiresAt": {"type": "string", "format": "date-time"},
                    "apiKey": {"type": "string", "description": "Stream API key"},
                    "userId": {"type": "string"},
                },
            },
            "ChannelRequest": {
                "type": "object",
                "additionalProperties": False,
                "required": ["orderId"],
                "properties": {
                    "orderId": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_ID_LENGTH,
                        "pattern": "^[A-Za-z0-9_-]+$",
                    }
                },
            },
            "Channel": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "orderId",
                    "channelType",
                    "channelId",
                    "cid",
                    "role",
                    "members",
                    "syncState",
                    "state",
                ],
                "properties": {
                    "orderId": {"type": "string"},
                    "channelType": {"type": "string"},
                    "channelId": {"type": "string"},
                    "cid": {"type": "string", "description": "`channelType:channelId`"},
                    "role": {"type": "string", "enum": ["buyer", "seller", "support"]},
                    "members": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 2,
                        "description": "user ids: buyer, seller, then the support agents",
                    },
                    "syncState": {"type": "string", "enum": ["pending", "synced"]},
                    "state": {
                        "type": "string",
                        "enum": ["open", "closed", "disputed"],
                        "description": "`closed`: frozen, readable, nobody posts; "
                        "`disputed`: support agents are members",
                    },
                },
            },
            "Status": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string", "enum": ["ok", "ready"]}},
            },
            "Error": {
                "type": "object",
                "additionalProperties": False,
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": ERROR_CODES},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
        },
    },
}


def openapi_document(*, cookie_name: str = "tt_session", max_ttl_s: int = 86400) -> dict[str, Any]:
    """A copy of the document, with the configured session cookie and maximum TTL."""
    doc = copy.deepcopy(_DOCUMENT)
    doc["components"]["securitySchemes"]["sessionCookie"]["name"] = cookie_name
    for schema in (
        doc["paths"]["/api/chat/stream/token"]["get"]["parameters"][0]["schema"],
        doc["components"]["schemas"]["TokenRequest"]["properties"]["ttl"],
    ):
        schema["maximum"] = max_ttl_s
    return doc

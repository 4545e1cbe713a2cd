"""The asyncio client (``grpc.aio``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import TracebackType

import grpc

from tradetrust.chat.client import _requests as req
from tradetrust.chat.client._config import ClientOptions
from tradetrust.chat.client._errors import from_rpc_error
from tradetrust.chat.client._models import (
    Authorization,
    EnsuredChannel,
    IssuedToken,
    OrderChannel,
    OrderChannelDetails,
    Participant,
    Revocation,
)
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc


class AsyncChatGatewayClient:
    """Calls the ChatGateway from asyncio code.

    Create it inside the running event loop; the channel connects lazily on the first
    call. Use it as ``async with`` or call :meth:`close`. Every call carries the service key,
    the default deadline (``ClientOptions.deadline_s``, or ``timeout=``), and is retried on
    ``UNAVAILABLE`` by the channel's retry policy. Failures raise
    :class:`~tradetrust.chat.client.ChatGatewayError` subclasses.

    Args:
        target: gateway address, e.g. ``"127.0.0.1:50051"`` or ``"dns:///chat-gateway:443"``.
        service_key: this service's key, sent as ``authorization: Bearer <key>``.
        options: deadline, retry, TLS/mTLS and keepalive settings.
    """

    def __init__(
        self, target: str, service_key: str, *, options: ClientOptions | None = None
    ) -> None:
        self._options = options if options is not None else ClientOptions()
        self._metadata = req.auth_metadata(service_key)
        channel_options = self._options.channel_options()
        if self._options.tls is None:
            self._channel = grpc.aio.insecure_channel(target, options=channel_options)
        else:
            self._channel = grpc.aio.secure_channel(
                target, self._options.tls.credentials(), options=channel_options
            )
        self._stub = pb_grpc.ChatGatewayStub(self._channel)

    @property
    def options(self) -> ClientOptions:
        """The options this client was built with."""
        return self._options

    async def wait_until_ready(self, timeout: float | None = None) -> None:
        """Connect now instead of on the first call; raises ``TimeoutError`` after
        ``timeout`` seconds (default: the call deadline)."""
        seconds = timeout if timeout is not None else self._options.deadline_s
        async with asyncio.timeout(seconds):
            await self._channel.channel_ready()

    async def issue_token(
        self, user_id: str, ttl: timedelta | float | None = None, *, timeout: float | None = None
    ) -> IssuedToken:
        """Sign a Stream user token for ``user_id`` (``ttl``: timedelta or seconds; default
        the gateway's, 24 h)."""
        try:
            response = await self._stub.IssueToken(
                req.issue_token_request(user_id, ttl), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return IssuedToken.from_proto(response)

    async def ensure_order_channel(
        self,
        order_id: str,
        buyer: Participant | str,
        seller: Participant | str,
        *,
        timeout: float | None = None,
    ) -> EnsuredChannel:
        """Record the order and make sure its private buyer/seller channel exists.

        Idempotent: repeating it returns the same channel with ``created=False``.

        Raises:
            ConflictError: the order already has a channel with other participants.
            InvalidArgumentError: a field is invalid (``.field`` names it).
        """
        try:
            response = await self._stub.EnsureOrderChannel(
                req.ensure_request(order_id, buyer, seller), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return EnsuredChannel.from_proto(response)

    async def authorize_participant(
        self, order_id: str, user_id: str, *, timeout: float | None = None
    ) -> Authorization:
        """Whether ``user_id`` may open the order's chat (and as which role).

        Raises:
            NotFoundError: the order is unknown.
        """
        try:
            response = await self._stub.AuthorizeParticipant(
                req.authorize_request(order_id, user_id), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return Authorization.from_proto(response)

    async def get_order_channel(
        self, order_id: str, *, timeout: float | None = None
    ) -> OrderChannelDetails:
        """The order's channel as the gateway's registry has it, and its history (oldest
        first).

        Raises:
            NotFoundError: the order is unknown.
            InvalidArgumentError: ``order_id`` is invalid (``.field`` names it).
        """
        try:
            response = await self._stub.GetOrderChannel(
                req.get_request(order_id), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return OrderChannelDetails.from_proto(response)

    async def close_order_channel(
        self, order_id: str, reason: str = "", *, timeout: float | None = None
    ) -> OrderChannel:
        """End the order's chat: ``OPEN`` or ``DISPUTED`` becomes ``CLOSED``, frozen in Stream
        (members read the history, nobody posts); support agents stay members.

        Idempotent: closing a closed order changes nothing and records no event. ``reason``
        (optional; at most 500 characters) is kept in the history.

        Raises:
            NotFoundError: the order is unknown.
            InvalidArgumentError: ``order_id`` or ``reason`` is invalid (``.field`` names it).
        """
        try:
            response = await self._stub.CloseOrderChannel(
                req.close_request(order_id, reason), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return OrderChannel.from_proto(response.channel)

    async def open_dispute(
        self,
        order_id: str,
        agent: Participant | str,
        reason: str = "",
        *,
        timeout: float | None = None,
    ) -> OrderChannel:
        """Make the support ``agent`` a member of the order's chat (a channel moderator) and
        unfreeze it: ``OPEN`` or ``CLOSED`` becomes ``DISPUTED``.

        Another agent joins an open dispute; an agent already in it changes nothing (so a
        repeat is safe). ``agent`` may be a bare user id; ``reason`` (optional; at most 500
        characters) is kept in the history.

        Raises:
            NotFoundError: the order is unknown.
            InvalidArgumentError: a field is invalid, or the agent is the order's buyer or
                seller (``.field`` names it, e.g. ``agent.user_id``).
        """
        try:
            response = await self._stub.OpenDispute(
                req.dispute_request(order_id, agent, reason), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return OrderChannel.from_proto(response.channel)

    async def revoke_user_tokens(self, user_id: str, *, timeout: float | None = None) -> Revocation:
        """Make every Stream token of ``user_id`` issued before the returned ``revoke_time``
        stop working at Stream; a token issued after this returns keeps working.

        The gateway answers once its clock is past the next full second (so the call takes up
        to about 1.25 s). Calling it again moves ``revoke_time`` forward. A token cache in
        front of a client keeps handing out the revoked token: call its
        ``invalidate(user_id)`` once this returns.

        Raises:
            InvalidArgumentError: ``user_id`` is invalid (``.field`` names it).
        """
        try:
            response = await self._stub.RevokeUserTokens(
                req.revoke_request(user_id), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return Revocation.from_proto(response)

    def _call(self, timeout: float | None) -> req.CallKwargs:
        return req.call_kwargs(self._options, self._metadata, timeout)

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; calls still running are cancelled after ``grace`` seconds."""
        await self._channel.close(grace)

    async def __aenter__(self) -> AsyncChatGatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

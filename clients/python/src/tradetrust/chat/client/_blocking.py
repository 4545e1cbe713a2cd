"""The blocking client (``grpc`` sync channel), for threaded code such as WSGI backends."""

from __future__ import annotations

from datetime import timedelta
from types import TracebackType

import grpc

from tradetrust.chat.client import _requests as req
from tradetrust.chat.client._config import ClientOptions
from tradetrust.chat.client._errors import from_rpc_error
from tradetrust.chat.client._models import Authorization, EnsuredChannel, IssuedToken, Participant
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc


class ChatGatewayClient:
    """Calls the ChatGateway from blocking code; safe to share between threads.

    Same behaviour as :class:`~tradetrust.chat.client.AsyncChatGatewayClient`: service key
    metadata, default deadline, ``UNAVAILABLE`` retries, precise exceptions. Use it as a
    context manager or call :meth:`close`.

    Args:
        target: gateway address, e.g. ``"127.0.0.1:50051"``.
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
            self._channel = grpc.insecure_channel(target, options=channel_options)
        else:
            self._channel = grpc.secure_channel(
                target, self._options.tls.credentials(), options=channel_options
            )
        self._stub = pb_grpc.ChatGatewayStub(self._channel)

    @property
    def options(self) -> ClientOptions:
        """The options this client was built with."""
        return self._options

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Connect now instead of on the first call; raises ``TimeoutError`` after
        ``timeout`` seconds (default: the call deadline)."""
        seconds = timeout if timeout is not None else self._options.deadline_s
        try:
            grpc.channel_ready_future(self._channel).result(timeout=seconds)
        except grpc.FutureTimeoutError:
            raise TimeoutError(f"gateway not ready within {seconds}s") from None

    def issue_token(
        self, user_id: str, ttl: timedelta | float | None = None, *, timeout: float | None = None
    ) -> IssuedToken:
        """Sign a Stream user token for ``user_id`` (``ttl``: timedelta or seconds; default
        the gateway's, 24 h)."""
        try:
            response = self._stub.IssueToken(
                req.issue_token_request(user_id, ttl), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return IssuedToken.from_proto(response)

    def ensure_order_channel(
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
            response = self._stub.EnsureOrderChannel(
                req.ensure_request(order_id, buyer, seller), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return EnsuredChannel.from_proto(response)

    def authorize_participant(
        self, order_id: str, user_id: str, *, timeout: float | None = None
    ) -> Authorization:
        """Whether ``user_id`` may open the order's chat (and as which role).

        Raises:
            NotFoundError: the order is unknown.
        """
        try:
            response = self._stub.AuthorizeParticipant(
                req.authorize_request(order_id, user_id), **self._call(timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return Authorization.from_proto(response)

    def _call(self, timeout: float | None) -> req.CallKwargs:
        return req.call_kwargs(self._options, self._metadata, timeout)

    def close(self) -> None:
        """Close the channel, cancelling calls still running."""
        self._channel.close()

    def __enter__(self) -> ChatGatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

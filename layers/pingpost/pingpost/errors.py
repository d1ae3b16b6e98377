"""Errors a publisher can act on; the edge turns each into an XML error with its HTTP status."""

from __future__ import annotations


class PingPostError(Exception):
    """A request the exchange refuses, with a message safe to show the publisher."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(PingPostError):
    """A field is missing or its value is not acceptable."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


class Unauthorized(PingPostError):
    """No Key, or a Key no vendor has."""

    status = 401


class Forbidden(PingPostError):
    """The vendor may not do this (disabled account, another vendor's lead)."""

    status = 403


class LeadNotFound(PingPostError):
    """The Lead_ID is unknown to this vendor or has expired."""

    status = 404


class Conflict(PingPostError):
    """The lead is being posted by another request right now."""

    status = 409


class PayloadTooLarge(PingPostError):
    """The request body is over the size the exchange accepts."""

    status = 413


class TooManyRequests(PingPostError):
    """The vendor's Key is over its rate limit this second."""

    status = 429


class Unavailable(PingPostError):
    """Storage failed or was throttled; nothing was accepted, the publisher may retry."""

    status = 503

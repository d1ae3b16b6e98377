"""CORS as API Gateway HTTP API applies an API's CorsConfiguration, for the local gateway.

With CORS configured, the gateway answers preflights itself (no function runs), adds the grant
to the answers of allowed origins, and drops whatever CORS headers a function returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

CORS_HEADER_PREFIX: Final = "access-control-"
_SCHEMES: Final = ("http", "https")


class CorsError(ValueError):
    """An origin or a CorsConfiguration the exchange refuses."""


def parse_origin(text: str) -> str:
    """An origin as browsers send it in Origin: scheme://host[:port], scheme and host lower-cased.

    Raises CorsError for '*' (an origin must be named), a path, or anything else but an origin.
    """
    value = text.strip()
    if "*" in value:
        raise CorsError(
            f"{text!r} is refused: '*' would let any site's pages call the API; "
            "name each origin (e.g. https://forms.example.com)"
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise CorsError(f"{text!r} is not an origin: {error}") from None
    if parts.scheme.lower() not in _SCHEMES or not parts.hostname:
        raise CorsError(
            f"{text!r} is not an origin: expected http(s)://host[:port], "
            "e.g. https://forms.example.com"
        )
    if parts.path or parts.query or parts.fragment or "?" in value or "#" in value:
        raise CorsError(
            f"{text!r} is not an origin: an origin has no path, query or fragment "
            f"(browsers send {parts.scheme.lower()}://{parts.netloc.lower()})"
        )
    if parts.username is not None or parts.password is not None:
        raise CorsError(f"{text!r} is not an origin: it names a user")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literals keep their brackets
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def _matchable(origin: str) -> str | None:
    """A request's Origin in the form allowed origins are kept in; None if it is no origin."""
    try:
        return parse_origin(origin)
    except CorsError:
        return None  # "null" (sandboxed pages, files) and anything malformed match nothing


def merge_origins(value: str, extra: Iterable[str]) -> str:
    """A CorsOrigins parameter value (comma-separated) with more origins added, each once."""
    merged: list[str] = []
    for origin in [*value.split(","), *extra]:
        stripped = origin.strip()
        if stripped and stripped not in merged:
            merged.append(stripped)
    return ",".join(merged)


def _items(value: Any, key: str) -> list[str]:
    """A CorsConfiguration list (or comma-separated text) as its non-empty members."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise CorsError(f"CorsConfiguration {key} must be a list, not {value!r}")
    return [str(item).strip() for item in value if str(item).strip()]


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """The first value of a request header, matched case-insensitively."""
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """An HttpApi's CorsConfiguration, checked: named origins only, never '*'."""

    origins: tuple[str, ...]
    methods: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    credentials: bool = False

    @classmethod
    def from_configuration(cls, configuration: Mapping[str, Any]) -> CorsPolicy:
        """Build from a resolved CorsConfiguration; CorsError names what is refused."""
        origins: list[str] = []
        for origin in _items(configuration.get("AllowOrigins"), "AllowOrigins"):
            try:
                parsed = parse_origin(origin)
            except CorsError as error:
                raise CorsError(f"CorsConfiguration AllowOrigins: {error}") from None
            if parsed not in origins:
                origins.append(parsed)
        max_age = configuration.get("MaxAge")
        credentials = configuration.get("AllowCredentials", False)
        return cls(
            origins=tuple(origins),
            methods=tuple(
                method.upper()
                for method in _items(configuration.get("AllowMethods"), "AllowMethods")
            ),
            headers=tuple(_items(configuration.get("AllowHeaders"), "AllowHeaders")),
            expose_headers=tuple(_items(configuration.get("ExposeHeaders"), "ExposeHeaders")),
            max_age=None if max_age is None else int(max_age),
            credentials=str(credentials).strip().lower() == "true",
        )

    def allows(self, origin: str | None) -> bool:
        """Whether a request's Origin header names an allowed origin (exactly)."""
        return origin is not None and _matchable(origin) in self.origins

    @staticmethod
    def origin(headers: Sequence[tuple[str, str]]) -> str | None:
        """The request's Origin header, if any."""
        return _header(headers, "origin")

    @staticmethod
    def is_preflight(method: str, headers: Sequence[tuple[str, str]]) -> bool:
        """OPTIONS with Origin and Access-Control-Request-Method: what API Gateway answers."""
        return (
            method.upper() == "OPTIONS"
            and _header(headers, "origin") is not None
            and _header(headers, "access-control-request-method") is not None
        )

    def _granted(self, origin: str | None) -> list[tuple[str, str]]:
        """The grant every answer to an allowed origin carries; nothing for any other."""
        if origin is None or not self.allows(origin):
            return []
        granted = [("access-control-allow-origin", origin)]
        if self.credentials:
            granted.append(("access-control-allow-credentials", "true"))
        return granted

    def preflight_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The grant of a preflight: nothing unless the origin is allowed."""
        granted = self._granted(origin)
        if granted and self.methods:
            granted.append(("access-control-allow-methods", ",".join(self.methods)))
        if granted and self.headers:
            granted.append(("access-control-allow-headers", ",".join(self.headers)))
        if granted and self.max_age is not None:
            granted.append(("access-control-max-age", str(self.max_age)))
        return granted

    def response_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The grant added to an actual request's answer: nothing unless the origin is allowed."""
        granted = self._granted(origin)
        if granted and self.expose_headers:
            granted.append(("access-control-expose-headers", ",".join(self.expose_headers)))
        return granted

    def apply(
        self, headers: list[tuple[str, str]], origin: str | None, *, preflight: bool = False
    ) -> list[tuple[str, str]]:
        """A response's headers with the function's own CORS headers dropped, the grant added
        (when the origin is allowed) and Origin in Vary, since the answer depends on it."""
        kept = [(name, value) for name, value in headers if not _is_cors_header(name)]
        granted = self.preflight_headers(origin) if preflight else self.response_headers(origin)
        return _vary_on_origin(kept + granted)


def _is_cors_header(name: str) -> bool:
    return name.lower().startswith(CORS_HEADER_PREFIX)


def _vary_on_origin(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Add Origin to the response's Vary header (or add one), unless it is there already."""
    tokens = [
        token.strip().lower()
        for name, value in headers
        if name.lower() == "vary"
        for token in value.split(",")
    ]
    if "origin" in tokens or "*" in tokens:
        return headers
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            headers[index] = (name, f"{value}, Origin" if value.strip() else "Origin")
            return headers
    headers.append(("vary", "Origin"))
    return headers

"""PEP 3333 environ from a parsed request head, plus the trusted-proxy rules.

:class:`EnvironBuilder` is built once per worker (the static keys), gives each connection a
base dict (server and peer addresses, whether the peer is a trusted proxy) and each request
a copy filled from the request head. Header names holding ``_`` are dropped here so they
cannot impersonate ``-`` names (``X-Auth_User`` vs ``X-Auth-User``), and this happens before
any proxy header is read. Proxy headers (``X-Forwarded-For``, ``X-Forwarded-Proto``,
``Forwarded``) are honoured only when the peer is in ``--forwarded-allow-ips``.

This module does no I/O: the body stream, the error stream and the file wrapper are handed
in by the connection driver.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any
from urllib.parse import unquote_to_bytes

Address = Any  # what socket.getsockname()/getpeername() return (tuple or str for unix)

_KEY_CACHE: dict[bytes, str] = {}
_KEY_CACHE_MAX = 512
_SPECIAL = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_PROXY_NAMES = (b"x-forwarded-for", b"x-forwarded-proto", b"forwarded")


def header_key(name: bytes) -> str:
    """``b"user-agent"`` -> ``"HTTP_USER_AGENT"`` (cached: the same names come again)."""
    key = _KEY_CACHE.get(name)
    if key is None:
        key = _SPECIAL.get(name) or "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_KEY_CACHE) < _KEY_CACHE_MAX:
            _KEY_CACHE[name] = key
    return key


class ProxyTrust:
    """Which peers may set proxy headers: addresses/networks, ``*`` for all."""

    def __init__(self, allowed: Iterable[str]) -> None:
        items = tuple(allowed)
        self.everyone = "*" in items
        self._networks = tuple(
            ipaddress.ip_network(item, strict=False) for item in items if item != "*"
        )

    def trusts(self, peer: Address) -> bool:
        """True for a trusted peer; unix-socket peers (not an (ip, port) tuple) are local."""
        if self.everyone or not isinstance(peer, tuple):
            return True
        return self.trusts_ip(peer[0])

    def trusts_ip(self, host: str) -> bool:
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Request target -> (path, query); absolute-form loses its scheme and authority."""
    if target[:1] != b"/":
        lowered = target[:8].lower()
        if lowered.startswith((b"http://", b"https://")):
            slash = target.find(b"/", target.find(b"//") + 2)
            target = target[slash:] if slash >= 0 else b"/"
    path, _, query = target.partition(b"?")
    path = path.partition(b"#")[0]
    return path, query


def decode_path(path: bytes) -> str:
    """Percent-decoded path as a latin-1 ``str`` (PEP 3333's bytes-in-str convention)."""
    if b"%" in path:
        path = unquote_to_bytes(path)
    return path.decode("latin-1")


def split_host(host: str, default_port: str) -> tuple[str, str]:
    """``example.com:8080`` -> (``example.com``, ``8080``); ``[::1]:80`` -> (``::1``, ``80``)."""
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            port = host[end + 2 :] if host[end + 1 : end + 2] == ":" else ""
            return host[1:end], port or default_port
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return name, port
    return host, default_port


def _forwarded_client(value: str, trust: ProxyTrust) -> str | None:
    """The client address from an X-Forwarded-For list: the right-most hop that is not
    itself a trusted proxy (the left-most entries are whatever the client wrote)."""
    hops = [hop.strip() for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not trust.trusts_ip(hop):
            return hop
    return hops[0] if hops else None


def _parse_forwarded(value: str) -> dict[str, str]:
    """The last element of an RFC 7239 ``Forwarded`` header as {param: value}."""
    last = value.rsplit(",", 1)[-1]
    result = {}
    for pair in last.split(";"):
        name, eq, raw = pair.partition("=")
        if eq:
            result[name.strip().lower()] = raw.strip().strip('"')
    return result


class EnvironBuilder:
    """Builds environs for one worker; see the module docstring."""

    def __init__(
        self,
        *,
        root_path: str = "",
        forwarded_allow_ips: Sequence[str] = ("127.0.0.1", "::1"),
        multithread: bool = True,
        multiprocess: bool = True,
        file_wrapper: Any = None,
        errors: IO[str] | None = None,
    ) -> None:
        self.root_path = root_path
        self.trust = ProxyTrust(forwarded_allow_ips)
        self._static: dict[str, Any] = {
            "SCRIPT_NAME": root_path,
            "wsgi.version": (1, 0),
            "wsgi.errors": errors if errors is not None else sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        if file_wrapper is not None:
            self._static["wsgi.file_wrapper"] = file_wrapper

    def connection_base(
        self, sockname: Address, peername: Address, url_scheme: str = "http"
    ) -> dict[str, Any]:
        """The keys shared by every request of one connection."""
        base = dict(self._static)
        base["wsgi.url_scheme"] = url_scheme
        if isinstance(sockname, tuple):
            base["SERVER_NAME"], base["SERVER_PORT"] = str(sockname[0]), str(sockname[1])
        else:
            base["SERVER_NAME"], base["SERVER_PORT"] = "localhost", "80"
        if isinstance(peername, tuple) and peername:
            base["REMOTE_ADDR"], base["REMOTE_PORT"] = str(peername[0]), str(peername[1])
        else:
            base["REMOTE_ADDR"] = ""
        base["cotyledon.trusted_peer"] = self.trust.trusts(peername)
        return base

    def build(
        self,
        base: dict[str, Any],
        request: Any,
        body: Any,
    ) -> dict[str, Any]:
        """The environ of one ``request`` (an ``_http_events.Request``); ``body`` becomes
        ``wsgi.input``."""
        environ = base.copy()
        method, target, version = request.method, request.target, request.http_version
        path, query = split_target(target)
        path_info = decode_path(path)
        root = self.root_path
        if root and (path_info == root or path_info.startswith(root + "/")):
            path_info = path_info[len(root) :]
        environ["REQUEST_METHOD"] = method if type(method) is str else method.decode("latin-1")
        environ["PATH_INFO"] = path_info
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["RAW_URI"] = target.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + (
            version if type(version) is str else version.decode("latin-1")
        )
        environ["wsgi.input"] = body
        proxied = False
        for name, raw in request.headers:
            if b"_" in name:
                continue
            key = _KEY_CACHE.get(name) or header_key(name)
            value = raw.decode("latin-1")
            if key in environ and key.startswith("HTTP_"):
                separator = "; " if key == "HTTP_COOKIE" else ", "
                environ[key] = environ[key] + separator + value
            else:
                environ[key] = value
            if name in _PROXY_NAMES:
                proxied = True
        host = environ.get("HTTP_HOST")
        if host:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = split_host(
                host, environ["SERVER_PORT"]
            )
        if proxied and environ["cotyledon.trusted_peer"]:
            self._apply_proxy_headers(environ)
        return environ

    def _apply_proxy_headers(self, environ: dict[str, Any]) -> None:
        forwarded = environ.get("HTTP_FORWARDED")
        if forwarded:
            params = _parse_forwarded(forwarded)
            client = params.get("for")
            if client:
                environ["REMOTE_ADDR"] = split_host(client, "")[0]
                environ.pop("REMOTE_PORT", None)
            proto = params.get("proto", "").lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
            return
        xff = environ.get("HTTP_X_FORWARDED_FOR")
        if xff:
            client = _forwarded_client(xff, self.trust)
            if client:
                environ["REMOTE_ADDR"] = client
                environ.pop("REMOTE_PORT", None)
        proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto

"""PEP 3333 environ from a parsed request head, plus the trusted-proxy rules.

:class:`EnvironBuilder` is built once per worker (the static keys), gives each connection a
base dict (server and peer addresses, whether the peer is a trusted proxy) and each request
a copy filled from the request head. Header names holding ``_`` are dropped here so they
cannot impersonate ``-`` names (``X-Auth_User`` vs ``X-Auth-User``), and this happens before
any proxy header is read. Proxy headers are honoured only when the peer is in
``--forwarded-allow-ips``, and only one family of them, chosen by ``--forwarded-headers``:
``X-Forwarded-For`` + ``X-Forwarded-Proto`` (``x-forwarded``) or RFC 7239 ``Forwarded``
(``forwarded``).  The other family is left to the app as plain client headers: a proxy that
sets one family passes the other through from the client untouched.  ``REMOTE_ADDR`` only
ever becomes a valid IP address.

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
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_KEY_CACHE: dict[bytes, str] = {}
_KEY_CACHE_MAX = 512
_SPECIAL = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
#: ``--forwarded-headers`` -> the header names of that family
PROXY_HEADER_FAMILIES = {
    "x-forwarded": (b"x-forwarded-for", b"x-forwarded-proto"),
    "forwarded": (b"forwarded",),
}
_DEFAULT_PORTS = {b"http": "80", b"https": "443"}


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
        return self.trusts_address(address)

    def trusts_address(self, address: IPAddress) -> bool:
        if self.everyone:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Request target -> (path, query); absolute-form loses its scheme and authority."""
    return parse_target(target)[1:]


def parse_target(target: bytes) -> tuple[bytes | None, bytes, bytes]:
    """Request target -> (authority, path, query), RFC 9112 §3.2.

    ``authority`` is ``None`` unless the target is in absolute-form
    (``http://a.example:8080/p?q``); then its path may be empty, which means ``/``.  The
    head reader already refused fragments, schemes other than http(s) and userinfo.
    """
    authority = None
    if target[:1] != b"/" and target != b"*":
        scheme_end = target.find(b"://")
        if scheme_end > 0:
            start = scheme_end + 3
            end = start
            while end < len(target) and target[end] not in b"/?#":
                end += 1
            authority = target[start:end]
            target = target[end:]
            if target[:1] != b"/":
                target = b"/" + target
    path, _, query = target.partition(b"?")
    path = path.partition(b"#")[0]
    return authority, path, query


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


def client_ip(text: str) -> str | None:
    """The IP address a proxy header names, canonical, or None when it names none.

    Accepts ``192.0.2.1``, ``192.0.2.1:4711``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:4711``; anything else (``unknown``, RFC 7239 obfuscated ``_hidden``
    identifiers, host names, garbage) is None.
    """
    parsed = _parse_ip(text)
    return None if parsed is None else _canonical(parsed)


def _parse_ip(text: str) -> tuple[IPAddress, str] | None:
    """(address, its text without brackets or port), or None."""
    text = text.strip().strip('"')
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not _is_port(text[end + 1 :])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        return ipaddress.ip_address(text), text
    except ValueError:
        return None


def _canonical(parsed: tuple[IPAddress, str]) -> str:
    # ip_address() takes IPv4 only in its canonical dotted form; str() costs about as much
    # as the parse, so it is kept for IPv6 (2001:DB8::0:1 -> 2001:db8::1).
    address, text = parsed
    return text if address.version == 4 else str(address)


def _is_port(text: str) -> bool:
    return text[:1] == ":" and text[1:].isdigit()


def forwarded_client(hops: Sequence[str], trust: ProxyTrust) -> str | None:
    """The client address of a list of hops (left: farthest; right: our peer's own).

    The right-most hop that is not a trusted proxy is the client, since everything left of
    it was written by that untrusted client; if every hop is trusted, the left-most one.
    None when that hop is not a valid IP address (or the list is empty): the peer stays.
    An unreadable hop is never skipped as a proxy: it ends the walk.
    """
    parsed = None
    for hop in reversed(hops):
        parsed = _parse_ip(hop)
        if parsed is None or not trust.trusts_address(parsed[0]):
            break
    return None if parsed is None else _canonical(parsed)


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """An RFC 7239 ``Forwarded`` field value as one {param: value} dict per element."""
    elements = []
    for element in _split_quoted(value, ","):
        params = {}
        for pair in _split_quoted(element, ";"):
            name, eq, raw = pair.partition("=")
            if eq:
                params[name.strip().lower()] = raw.strip().strip('"')
        elements.append(params)
    return elements


def _split_quoted(value: str, separator: str) -> list[str]:
    """``value`` split at ``separator`` outside double quotes (``for="[::1]:80"``)."""
    parts, start, quoted = [], 0, False
    for index, char in enumerate(value):
        if char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(value[start:index])
            start = index + 1
    parts.append(value[start:])
    return parts


class EnvironBuilder:
    """Builds environs for one worker; see the module docstring."""

    def __init__(
        self,
        *,
        root_path: str = "",
        forwarded_allow_ips: Sequence[str] = ("127.0.0.1", "::1"),
        forwarded_headers: str = "x-forwarded",
        multithread: bool = True,
        multiprocess: bool = True,
        file_wrapper: Any = None,
        errors: IO[str] | None = None,
    ) -> None:
        self.root_path = root_path
        self.trust = ProxyTrust(forwarded_allow_ips)
        if forwarded_headers not in PROXY_HEADER_FAMILIES:
            msg = f"'forwarded_headers' must be one of {sorted(PROXY_HEADER_FAMILIES)}"
            raise ValueError(msg + f", not: {forwarded_headers!r}")
        self._rfc7239 = forwarded_headers == "forwarded"
        self._proxy_names = PROXY_HEADER_FAMILIES[forwarded_headers]
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
        authority, path, query = parse_target(target)
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
        proxy_names = self._proxy_names
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
            if name in proxy_names:
                proxied = True
        if authority is not None:
            _use_authority(environ, target, authority)
        elif environ.get("HTTP_HOST"):
            environ["SERVER_NAME"], environ["SERVER_PORT"] = split_host(
                environ["HTTP_HOST"], environ["SERVER_PORT"]
            )
        if proxied and environ["cotyledon.trusted_peer"]:
            self._apply_proxy_headers(environ)
        return environ

    def _apply_proxy_headers(self, environ: dict[str, Any]) -> None:
        if self._rfc7239:
            elements = parse_forwarded(environ.get("HTTP_FORWARDED", ""))
            hops = [element.get("for", "") for element in elements]
            proto = elements[-1].get("proto", "") if elements else ""
        else:
            xff = environ.get("HTTP_X_FORWARDED_FOR", "").split(",")
            hops = [hop for hop in xff if hop.strip()]
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").rsplit(",", 1)[-1]
        client = forwarded_client(hops, self.trust)
        if client is not None:
            environ["REMOTE_ADDR"] = client
            environ.pop("REMOTE_PORT", None)
        proto = proto.strip().lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto


def _use_authority(environ: dict[str, Any], target: bytes, authority: bytes) -> None:
    """RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host field."""
    environ["HTTP_HOST"] = host = authority.decode("latin-1")
    scheme = target[: target.find(b"://")].lower()
    default_port = _DEFAULT_PORTS.get(scheme, environ["SERVER_PORT"])
    environ["SERVER_NAME"], environ["SERVER_PORT"] = split_host(host, default_port)

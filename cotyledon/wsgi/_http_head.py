"""Reading one request head: llhttp (httptools) for the syntax, our rules for the meaning.

Job: take bytes from the front of the receive buffer up to the end of exactly one request head
(never a byte further, so a pipelined request stays in the buffer), feed them to llhttp in its
strict mode, and apply what llhttp leaves to us: size limits (414/431), a single-SP request
line, versions other than 1.0/1.1 (505), request-target forms, Host rules, and the body
framing rules of RFC 9112 §6 (Content-Length vs Transfer-Encoding, 413 early).

Must not: read bodies (``_http_framing``), keep connection state across requests
(``_http_protocol``), touch sockets, time or logging.
"""

from __future__ import annotations

import dataclasses
import re

import httptools

from cotyledon.wsgi._http_events import (
    TOKEN_RE,
    ConnectionClosed,
    HTTPError,
    RemoteProtocolError,
    Request,
    trusted_request,
)

__all__ = ["CHUNKED", "HeadReader", "Limits"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits for what a client may send; each refusal names its status.

    :param max_request_line: bytes in the request line, CRLF excluded (414 beyond).  Same as
        Apache and gunicorn's hard maximum (8190).
    :param max_header_count: header fields in a request, or fields in a trailer section
        (431 beyond).  Same as gunicorn and Apache (100).
    :param max_header_size: bytes of one field line, ``name: value`` (431 beyond).
    :param max_head_size: bytes of the whole head: request line and fields (431 beyond); also
        the budget of a trailer section.  64 KiB: four times h11's 16 KiB, room for the
        8 KiB x 4 of nginx's ``large_client_header_buffers`` default.
    :param max_body_size: bytes of a request body (413 beyond, refused as soon as
        ``Content-Length`` or a chunk size says so); ``None`` for no limit.
    """

    max_request_line: int = 8190
    max_header_count: int = 100
    max_header_size: int = 8190
    max_head_size: int = 65536
    max_body_size: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.name == "max_body_size":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                what = "an int >= 1 or None" if field.name == "max_body_size" else "an int >= 1"
                msg = f"'{field.name}' must be {what}, not: {value!r} ({type(value).__name__})"
                raise ValueError(msg)


#: ``HeadReader.body_length`` of a chunked request.
CHUNKED = -1

# Header names whose meaning we check.
_SPECIAL = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"expect", b"content-type")
)
_NO_VALUES: list[bytes] = []
# Methods llhttp is given as they are; for any other token it sees GET (see HeadReader._start).
_LLHTTP_METHODS = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE")
)
_HTTP_VERSIONS = frozenset((b"1.0", b"1.1"))
# RFC 9110 §8.6: Content-Length = 1*DIGIT; 18 digits at most, so int() stays exact and small.
_DIGITS_RE = re.compile(rb"[0-9]{1,18}")
# RFC 9110 §7.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]
_HOST_RE = re.compile(
    rb"(?:\[[0-9A-Za-z:.\-_~!$&'()*+,;=%]+\]|[0-9A-Za-z.\-_~!$&'()*+,;=%]*)(?::[0-9]*)?"
)
# RFC 9112 §3.2.2 absolute-form, RFC 3986 §3: scheme "://" authority [path-abempty [?query]]
_ABSOLUTE_RE = re.compile(rb"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]+)(?:[/?].*)?")
# RFC 9110 §4.2: the http and https URI schemes are the only ones an origin server serves.
_SCHEMES = frozenset((b"http", b"https"))


def connection_tokens(value: bytes) -> list[bytes]:
    """The lower-cased options of a ``Connection`` field value (RFC 9110 §7.6.1)."""
    return [token.strip(b" \t").lower() for token in value.split(b",")]


class HeadReader:
    """Reads request heads, one at a time, from the front of a buffer.

    After ``read()`` returned a ``Request``, ``body_length`` says how its body is framed:
    ``CHUNKED`` or a byte count (0: no body).

    :param limits: the size limits to enforce.
    """

    __slots__ = (
        "_fed",
        "_head_done",
        "_headers",
        "_limits",
        "_line_checked",
        "_method",
        "_parser",
        "_target",
        "body_length",
    )

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.body_length = 0
        self._reset()

    def _reset(self) -> None:
        self._parser: httptools.HttpRequestParser | None = None
        self._method: bytes | None = None
        self._fed = 0
        self._line_checked = False
        self._target = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_done = False

    def read(self, buf: bytearray, eof: bool) -> Request | ConnectionClosed | None:
        """Consume one request head from ``buf`` if it is complete.

        :returns: the ``Request``; ``None`` when more bytes are needed; ``ConnectionClosed`` if
            the peer closed before sending anything (blank lines aside).
        :raises RemoteProtocolError: the head is refused, or the peer closed in its middle.
        """
        try:
            return self._read(buf, eof)
        except BaseException:
            self._parser = None  # break the parser -> callbacks -> self cycle
            raise

    def _read(self, buf: bytearray, eof: bool) -> Request | ConnectionClosed | None:
        if self._method is None:
            if not buf or buf.startswith(b"\r"):
                # RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
                # request-line (some clients send a CRLF after a POST body).
                while buf.startswith(b"\r\n"):
                    del buf[:2]
                if not buf or buf == b"\r":
                    return _nothing_yet(buf, eof)
            if not self._start(buf, eof):
                return None
        fed = self._fed
        end = buf.find(b"\r\n\r\n", fed - 3 if fed > 3 else 0)
        if end < 0:
            self._partial(buf, eof)
            return None
        head_len = end + 4
        limits = self._limits
        if head_len > limits.max_head_size:
            raise RemoteProtocolError("request header section too large", 431)
        line_end = buf.find(b"\r\n")
        if line_end > limits.max_request_line:
            raise RemoteProtocolError("request line too long", 414)
        self._feed(buf, head_len)
        if not self._head_done:
            raise RemoteProtocolError("malformed request head")
        request_line = bytes(buf[:line_end])
        # Checked before the head leaves the buffer: a refused head stays there to be logged.
        request = self._build_request(request_line, head_len)
        if head_len == len(buf):
            buf.clear()
        else:
            del buf[:head_len]
        self._reset()
        return request

    def _partial(self, buf: bytearray, eof: bool) -> None:
        """Check and feed an incomplete head, so bad bytes are refused without waiting."""
        self._check_request_line(buf)
        if len(buf) > self._limits.max_head_size:
            raise RemoteProtocolError("request header section too large", 431)
        self._feed(buf, len(buf))
        if eof:
            raise RemoteProtocolError("incomplete request head")

    def _start(self, buf: bytearray, eof: bool) -> bool:
        """Read the method ourselves and start llhttp; False until the method is complete.

        RFC 9110 §9.1: a method is any token (the application answers 405 or 501 to those it
        does not implement).  llhttp knows the registered methods only, so for any other token
        it parses the same head with ``GET`` in place of the method.
        """
        space = buf.find(b" ")
        method = bytes(buf[:space]) if space > 0 else b""
        if method not in _LLHTTP_METHODS:
            candidate = buf if space < 0 else method
            if TOKEN_RE.fullmatch(candidate) is None:
                raise RemoteProtocolError("invalid method")
            if space < 0:
                self._check_request_line(buf)
                if eof:
                    raise RemoteProtocolError("incomplete request head")
                return False
            if method == b"CONNECT":
                raise RemoteProtocolError("CONNECT is not supported", 501)
        self._method = method
        parser = self._parser = httptools.HttpRequestParser(self)
        # llhttp reads "chunked" followed by SP as chunked but "chunked" followed by HTAB as
        # another coding and refuses it; RFC 9110 §5.5 strips both (OWS).  We decide the
        # framing ourselves from the stripped values (``_body_length``), so llhttp's own
        # Transfer-Encoding verdict is not needed.
        parser.set_dangerous_leniencies(lenient_transfer_encoding=True)
        if method not in _LLHTTP_METHODS:
            parser.feed_data(b"GET")
            self._fed = space
        return True

    def _check_request_line(self, buf: bytearray) -> None:
        if self._line_checked:
            return
        limit = self._limits.max_request_line
        if buf.find(b"\r\n", 0, limit + 2) < 0:
            # a line of exactly ``limit`` bytes may be waiting for the LF of its CRLF
            if len(buf) > limit + 1 or (len(buf) == limit + 1 and buf[-1] != 0x0D):
                raise RemoteProtocolError("request line too long", 414)
            return
        self._line_checked = True

    def _feed(self, buf: bytearray, upto: int) -> None:
        start = self._fed
        if start == upto:
            return
        parser = self._parser
        assert parser is not None
        chunk = buf if start == 0 and upto == len(buf) else buf[start:upto]
        self._fed = upto
        try:
            parser.feed_data(chunk)
        except httptools.HttpParserUpgrade:
            # CONNECT or an Upgrade header: llhttp stops after the head, all we fed.  We never
            # switch protocols; the request is handled as a plain one.
            pass
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HTTPError):
                raise exc.__context__ from None
            raise RemoteProtocolError("malformed request") from exc
        except httptools.HttpParserError as exc:
            reason = str(exc)
            if reason == "Invalid HTTP version":
                raise RemoteProtocolError("HTTP version not supported", 505) from None
            raise RemoteProtocolError(f"malformed request: {reason}") from None

    # httptools callbacks (only while a head is fed)

    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # The hot path: limits are checked once the head is complete (its size is bounded
        # by max_head_size until then).
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_done = True

    # our rules

    def _build_request(self, request_line: bytes, head_len: int) -> Request:
        method = self._method
        assert method is not None
        target = self._target
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version, single SPs.
        # llhttp checked the parts; it also allows several SPs, which the length shows.
        if len(request_line) != len(method) + len(target) + 10:
            parser = self._parser
            assert parser is not None
            if parser.get_http_version() not in ("1.0", "1.1"):  # e.g. HTTP/0.9 "GET /"
                raise RemoteProtocolError("HTTP version not supported", 505)
            raise RemoteProtocolError("malformed request line")
        version = request_line[-3:]
        if version not in _HTTP_VERSIONS:
            raise RemoteProtocolError("HTTP version not supported", 505)
        _check_target(method, target)
        raw = self._headers
        limits = self._limits
        if len(raw) > limits.max_header_count:
            raise RemoteProtocolError("too many request header fields", 431)
        if head_len > limits.max_header_size:
            limit = limits.max_header_size - 2
            if any(len(name) + len(value) > limit for name, value in raw):
                raise RemoteProtocolError("request header field too large", 431)
        # RFC 9112 §5: OWS on both sides of the value; llhttp strips the leading one only.
        headers = tuple([(name.lower(), value.rstrip(b" \t")) for name, value in raw])
        keep_alive, expect_continue = self._check_headers(version, headers)
        return trusted_request(
            method,
            target,
            version,
            headers,
            keep_alive=keep_alive,
            expect_continue=expect_continue,
        )

    def _check_headers(
        self, version: bytes, headers: tuple[tuple[bytes, bytes], ...]
    ) -> tuple[bool, bool]:
        """Apply the field rules of RFC 9110/9112; set ``body_length``.

        :returns: (keep_alive, expect_continue) as the client asked.
        """
        hosts = 0
        host = b""
        found: dict[bytes, list[bytes]] | None = None
        for name, value in headers:
            if name == b"host":
                hosts += 1
                host = value
            elif name in _SPECIAL:
                if found is None:
                    found = {name: [value]}
                elif name in found:
                    found[name].append(value)
                else:
                    found[name] = [value]
        if hosts != 1 and (version == b"1.1" or hosts):
            # RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one otherwise.
            raise RemoteProtocolError("missing or repeated Host header")
        if hosts and _HOST_RE.fullmatch(host) is None:
            raise RemoteProtocolError("invalid Host header")
        if found is None:
            # no framing, Connection or Expect field: no body, the version's default
            self.body_length = 0
            return version == b"1.1", False
        if len(found.get(b"content-type", _NO_VALUES)) > 1:
            raise RemoteProtocolError("repeated Content-Type header")
        self.body_length = self._body_length(
            version, found.get(b"content-length"), found.get(b"transfer-encoding")
        )
        connection = found.get(b"connection")
        tokens = connection_tokens(b",".join(connection)) if connection else _NO_VALUES
        if version == b"1.1":
            # RFC 9110 §10.1.1: only "100-continue" is defined; other expectations are ignored.
            expect = found.get(b"expect")
            expect_continue = expect is not None and expect[-1].lower() == b"100-continue"
            return b"close" not in tokens, expect_continue
        # RFC 9112 §9.3: HTTP/1.0 persists only with "keep-alive"; Expect is for 1.1 only.
        return b"keep-alive" in tokens and b"close" not in tokens, False

    def _body_length(
        self, version: bytes, lengths: list[bytes] | None, codings: list[bytes] | None
    ) -> int:
        # RFC 9112 §6.1-6.3: refuse every ambiguous framing instead of picking one.
        if codings is not None:
            if version != b"1.1":
                raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            if lengths is not None:
                raise RemoteProtocolError("both Content-Length and Transfer-Encoding")
            _check_transfer_encoding(codings)
            return CHUNKED
        if lengths is None:
            # RFC 9112 §6.3 rule 7: neither field, no body.
            return 0
        # RFC 9110 §8.6: one plain decimal value; the list form "5, 5" is refused too.
        if len(lengths) != 1 or _DIGITS_RE.fullmatch(lengths[0]) is None:
            raise RemoteProtocolError("invalid or repeated Content-Length")
        length = int(lengths[0])
        max_body = self._limits.max_body_size
        if max_body is not None and length > max_body:
            raise RemoteProtocolError("request body too large", 413)
        return length


def _nothing_yet(buf: bytearray, eof: bool) -> ConnectionClosed | None:
    if not eof:
        return None
    if buf:
        raise RemoteProtocolError("incomplete request head")
    return ConnectionClosed()


def _check_target(method: bytes, target: bytes) -> None:
    # RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT only), asterisk-form
    # (OPTIONS only).  llhttp already refused CTLs, SP and non-ASCII bytes.
    if method == b"CONNECT":
        raise RemoteProtocolError("CONNECT is not supported", 501)
    if b"#" in target:
        # RFC 9112 §3.2: no fragment in any form (llhttp lets '#' through)
        raise RemoteProtocolError("invalid request target")
    if target[:1] == b"/":
        return
    if target == b"*":
        if method != b"OPTIONS":
            raise RemoteProtocolError("asterisk-form request target is only for OPTIONS")
        return
    match = _ABSOLUTE_RE.fullmatch(target)
    if match is None:
        raise RemoteProtocolError("invalid request target")
    if match.group(1).lower() not in _SCHEMES:
        raise RemoteProtocolError("request target scheme is not http or https")
    # RFC 9110 §4.2.4: userinfo is deprecated and a recipient SHOULD treat it as an error;
    # §4.2.1: an http(s) URI with an empty host MUST be rejected.  The authority replaces
    # Host (RFC 9112 §3.2.2), so it obeys the same syntax.
    authority = match.group(2)
    if b"@" in authority or authority[:1] == b":" or _HOST_RE.fullmatch(authority) is None:
        raise RemoteProtocolError("invalid authority in the request target")


def _check_transfer_encoding(values: list[bytes]) -> None:
    # RFC 9112 §6.1, §6.3 rule 4 and §7: chunked must be the final coding, once; we implement
    # no other transfer coding (RFC 9112 §7: 501 for an unknown one).
    codings = [c.strip(b" \t").lower() for c in b",".join(values).split(b",")]
    if codings == [b"chunked"]:
        return
    if any(TOKEN_RE.fullmatch(c) is None for c in codings):
        raise RemoteProtocolError("invalid Transfer-Encoding")
    if codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
        raise RemoteProtocolError("chunked must be the final transfer coding, once")
    raise RemoteProtocolError("transfer coding not implemented", 501)

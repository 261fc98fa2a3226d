"""Generated corpus families: the same rule checked over every byte or form it covers.

Each family is a loop over a table, so that, for example, every control byte in a field value
or every registered method is one case with its own id.
"""

from __future__ import annotations

import dataclasses

from tests.http_cases.corpus import Case, Expected

HEAD = b"Host: example.com\r\n"
CTLS = [bytes([b]) for b in [*range(0x09), *range(0x0A, 0x20), 0x7F]]

# Registered methods (RFC 9110 §9, WebDAV, PATCH...); any other token is accepted too.
KNOWN_METHODS = [
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"PURGE",
    b"QUERY",
]
UNKNOWN_TOKEN_METHODS = [
    b"get",
    b"Get",
    b"FOO",
    b"GETS",
    b"X-CUSTOM",
    b"BREW",
    b"M-SEARCH",
    b"!#$%&'*+-.^_`|~",
]
INVALID_METHODS = [b"GE(T", b"GE/T", b"G\x01T", b"GE\x7fT", b"G\xc3\xa9T", b"GE,T"]


def _get(
    head: bytes = HEAD, target: bytes = b"/", method: bytes = b"GET", version: bytes = b"1.1"
) -> bytes:
    return b"%s %s HTTP/%s\r\n%s\r\n" % (method, target, version, head)


def _ok(case_id: str, data: bytes, *expected: Expected, rfc: str = "", about: str = "") -> Case:
    return Case(case_id, data, None, expected, rfc=rfc, about=about)


def _bad(
    case_id: str, data: bytes, status: int = 400, rfc: str = "", h11: str | None = None
) -> Case:
    return Case(case_id, data, status, (), rfc=rfc, h11_differs=h11)


def _methods() -> list[Case]:
    cases = [
        _ok(
            f"method-known-{m.decode()}",
            _get(method=m),
            Expected(m, b"/", b"1.1", b""),
            rfc="RFC 9110 §9",
        )
        for m in KNOWN_METHODS
    ]
    cases += [
        _ok(
            f"method-other-token-{i}",
            _get(method=m),
            Expected(m, b"/", b"1.1", b""),
            rfc="RFC 9110 §9.1: method = token; the application decides (405/501)",
        )
        for i, m in enumerate(UNKNOWN_TOKEN_METHODS)
    ]
    cases += [
        _bad(f"method-invalid-{i}", _get(method=m), rfc="RFC 9110 §9.1: method = token")
        for i, m in enumerate(INVALID_METHODS)
    ]
    return cases


def _control_bytes() -> list[Case]:
    cases = []
    for ctl in CTLS:
        name = f"{ctl[0]:02x}"
        if ctl not in (b"\n", b"\r"):
            # a CTL inside a field value (HTAB excepted, not in the list)
            cases.append(
                _bad(
                    f"ctl-in-value-{name}",
                    _get(HEAD + b"X-Test: a" + ctl + b"b\r\n"),
                    rfc="RFC 9110 §5.5: field-vchar excludes CTLs",
                    h11=None
                    if ctl in (b"\x00", b"\x0b", b"\x0c")
                    else "h11 accepts control bytes other than NUL, CR, LF, VT and FF in values",
                )
            )
        cases.append(
            _bad(
                f"ctl-in-name-{name}",
                _get(HEAD + b"X-T" + ctl + b"est: ab\r\n"),
                rfc="RFC 9110 §5.1: field-name = token",
            )
        )
        cases.append(
            _bad(
                f"ctl-in-target-{name}",
                _get(target=b"/a" + ctl + b"b"),
                rfc="RFC 9112 §3.2 / RFC 3986: request-target has no CTL",
            )
        )
    return cases


def _separators_in_names() -> list[Case]:
    cases = []
    for sep in b'()<>@,;\\"/[]?={} \t':
        char = bytes([sep])
        cases.append(
            _bad(
                f"separator-in-name-{sep:02x}",
                _get(HEAD + b"X" + char + b"Y: v\r\n"),
                rfc="RFC 9110 §5.6.2: token excludes delimiters",
            )
        )
    return cases


def _content_lengths() -> list[Case]:
    bad = {
        "plus": b"+5",
        "minus": b"-5",
        "hex": b"0x5",
        "underscore": b"5_0",
        "inner-space": b"5 5",
        "list-equal": b"5, 5",
        "list-differ": b"5, 6",
        "comma": b"5,",
        "decimal": b"5.0",
        "empty": b"",
        "arabic-digit": b"\xd9\xa5",
        "fullwidth-digit": b"\xef\xbc\x95",
        "letter": b"five",
        "huge": b"9" * 19,
        "overflow": b"18446744073709551621",
    }
    h11_lenient = {"list-equal"}
    cases = []
    for name, value in bad.items():
        cases.append(
            _bad(
                f"content-length-{name}",
                _get(HEAD + b"Content-Length: " + value + b"\r\n", method=b"POST") + b"hello",
                rfc="RFC 9110 §8.6: Content-Length = 1*DIGIT; RFC 9112 §6.3 rule 5",
                h11="h11 collapses a list of equal values (RFC 9110 §8.6 allows either)"
                if name in h11_lenient
                else None,
            )
        )
    good = {"zero": (b"0", b""), "leading-zeros": (b"005", b"hello"), "ows": (b" 5 ", b"hello")}
    for name, (value, body) in good.items():
        cases.append(
            _ok(
                f"content-length-{name}",
                _get(HEAD + b"Content-Length: " + value + b"\r\n", method=b"POST") + body,
                Expected(b"POST", b"/", b"1.1", body),
                rfc="RFC 9110 §8.6",
            )
        )
    return cases


def _chunk_sizes() -> list[Case]:
    prefix = _get(HEAD + b"Transfer-Encoding: chunked\r\n", method=b"POST")
    bad = {
        "0x-prefix": b"0x5",
        "plus": b"+5",
        "minus": b"-5",
        "underscore": b"0_5",
        "leading-space": b" 5",
        "trailing-space": b"5 ",
        "trailing-tab": b"5\t",
        "empty": b"",
        "non-hex": b"5g",
        "17-digits": b"0" * 12 + b"00005",
        "semicolon-only": b"5;",
        "ext-no-name": b"5;=x",
        "ext-bare-cr": b"5;a\rb",
        "ext-ctl": b"5;a=\x01",
        "ext-unclosed-quote": b'5;a="b',
        "ext-space-in-token": b"5;a b",
    }
    h11_lenient = {
        "semicolon-only": "h11 accepts any bytes after ';' (ignores extensions)",
        "ext-no-name": "h11 accepts any bytes after ';' (ignores extensions)",
        "ext-bare-cr": "h11 accepts any bytes after ';' (CR inside extensions)",
        "ext-ctl": "h11 accepts any bytes after ';' (ignores extensions)",
        "ext-unclosed-quote": "h11 accepts any bytes after ';' (ignores extensions)",
        "ext-space-in-token": "h11 accepts any bytes after ';' (ignores extensions)",
        "17-digits": "h11 caps the size line length, not the number of digits",
        "trailing-space": "h11 accepts trailing whitespace after the chunk size",
        "trailing-tab": "h11 accepts trailing whitespace after the chunk size",
    }
    cases = [
        _bad(
            f"chunk-size-{name}",
            prefix + size + b"\r\nhello\r\n0\r\n\r\n",
            rfc="RFC 9112 §7.1: chunk-size = 1*HEXDIG, chunk-ext grammar",
            h11=h11_lenient.get(name),
        )
        for name, size in bad.items()
    ]
    cases.append(
        _bad(
            "chunk-size-line-too-long",
            prefix + b"5;x=" + b"0" * 5000 + b"\r\nhello\r\n0\r\n\r\n",
            rfc="RFC 9112 §7.1.1 (extension abuse: we cap the size line at 4096 bytes)",
            h11="h11 caps a chunk line at its max_incomplete_event_size (64 KiB here)",
        )
    )
    good = {
        "upper": (b"A", b"0123456789"),
        "lower": (b"a", b"0123456789"),
        "leading-zeros": (b"0005", b"hello"),
        "ext": (b"5;name", b"hello"),
        "ext-value": (b"5;name=value", b"hello"),
        "ext-quoted": (b'5;name="va;l\\"ue"', b"hello"),
        "ext-many": (b"5;a=1;b=2;c", b"hello"),
    }
    cases.append(
        Case(
            "chunk-size-ok-ext-bws",
            prefix + b"5 ; name = value\r\nhello\r\n0\r\n\r\n",
            None,
            (Expected(b"POST", b"/", b"1.1", b"hello"),),
            rfc="RFC 9112 §7.1.1: BWS around ';' and '=' in chunk extensions",
            h11_differs="h11 refuses whitespace around ';' and '=' in chunk extensions",
        )
    )
    for name, (size, body) in good.items():
        cases.append(
            _ok(
                f"chunk-size-ok-{name}",
                prefix + size + b"\r\n" + body + b"\r\n0\r\n\r\n",
                Expected(b"POST", b"/", b"1.1", body),
                rfc="RFC 9112 §7.1",
            )
        )
    return cases


def _transfer_codings() -> list[Case]:
    bad = {
        "gzip": (b"gzip", 400),
        "identity": (b"identity", 400),
        "chunked-gzip": (b"chunked, gzip", 400),
        "chunked-twice": (b"chunked, chunked", 400),
        "gzip-chunked": (b"gzip, chunked", 501),
        "deflate-chunked": (b"deflate, chunked", 501),
        "empty": (b"", 400),
        "empty-item": (b", chunked", 400),
        "xchunked": (b"xchunked", 400),
        "chunked-vt": (b"chunked\x0b", 400),
        "chunked-ff": (b"\x0cchunked", 400),
        "chunked-nbsp": (b"chunked\xa0", 400),
        "chunked-nel": (b"\x85chunked", 400),
        "quoted": (b'"chunked"', 400),
        "chunked-param": (b"chunked;q=1", 400),
    }
    h11_notes: dict[str, str] = {}
    cases = [
        _bad(
            f"transfer-encoding-{name}",
            _get(HEAD + b"Transfer-Encoding: " + value + b"\r\n", method=b"POST") + b"0\r\n\r\n",
            status,
            rfc="RFC 9112 §6.1, §6.3 rule 4: chunked is the final coding, once",
            h11=h11_notes.get(name),
        )
        for name, (value, status) in bad.items()
    ]
    for name, value in {"case": b"Chunked", "upper": b"CHUNKED", "ows": b" chunked "}.items():
        case = _ok(
            f"transfer-encoding-ok-{name}",
            _get(HEAD + b"Transfer-Encoding: " + value + b"\r\n", method=b"POST")
            + b"3\r\nabc\r\n0\r\n\r\n",
            Expected(b"POST", b"/", b"1.1", b"abc"),
            rfc="RFC 9112 §7: transfer-coding names are case-insensitive",
        )
        if value.strip() != value.strip().lower():
            note = "h11 lower-cases the Transfer-Encoding value it hands over"
            case = dataclasses.replace(case, h11_differs=note)
        cases.append(case)
    return cases


def _versions() -> list[Case]:
    cases = []
    for version, status in {
        b"HTTP/0.9": 505,
        b"HTTP/1.2": 505,
        b"HTTP/2.0": 505,
        b"HTTP/3.0": 505,
        b"HTTP/1.10": 400,
        b"HTTP/01.1": 400,
        b"HTTP/1": 400,
        b"HTTP/1.1.1": 400,
        b"http/1.1": 400,
        b"HTTPS/1.1": 400,
        b"HTTP /1.1": 400,
        b"": 400,
    }.items():
        label = version.decode().replace("/", "-").replace(" ", "_") or "missing"
        cases.append(
            _bad(
                f"version-{label}",
                b"GET / " + version + b"\r\n" + HEAD + b"\r\n",
                status,
                rfc="RFC 9112 §2.3; RFC 9110 §15.6.6 (505)",
                h11="h11 reads any HTTP/d.d version" if status == 505 else None,
            )
        )
    return cases


def _hosts() -> list[Case]:
    ok = [b"example.com", b"example.com:8080", b"[::1]:80", b"127.0.0.1", b"", b"xn--bcher-kva.ch"]
    cases = [
        _ok(
            f"host-ok-{i}",
            _get(b"Host: " + host + b"\r\n"),
            Expected(b"GET", b"/", b"1.1", b""),
            rfc="RFC 9110 §7.2, RFC 3986 §3.2.2",
        )
        for i, host in enumerate(ok)
    ]
    bad = [b"a b", b"a/b", b"a@b", b"a\\b", b"[::1", b"a?b", b"a#b", b'a"b', b"a:b:c:d/", b"<a>"]
    cases += [
        _bad(
            f"host-invalid-{i}",
            _get(b"Host: " + host + b"\r\n"),
            rfc='RFC 9110 §7.2: a Host that is not uri-host [":" port] MUST get a 400',
            h11="h11 does not check the Host value",
        )
        for i, host in enumerate(bad)
    ]
    return cases


def _lenient_target_bytes() -> list[Case]:
    # Visible ASCII outside the URI grammar: clients send some raw ('|' in queries, '"' and
    # '{}' from templates); they are passed on undecoded and the application decides.
    cases = []
    for char in b'\\"<>{}|^`[]':
        target = b"/a%cb?x%cy" % (char, char)
        cases.append(
            _ok(
                f"target-lenient-{char:02x}",
                _get(target=target),
                Expected(b"GET", target, b"1.1", b""),
                rfc="RFC 9112 §3.2 (visible ASCII outside RFC 3986 is passed on, as h11 does)",
            )
        )
    return cases


def generated_cases() -> list[Case]:
    return [
        *_lenient_target_bytes(),
        *_methods(),
        *_control_bytes(),
        *_separators_in_names(),
        *_content_lengths(),
        *_chunk_sizes(),
        *_transfer_codings(),
        *_versions(),
        *_hosts(),
    ]

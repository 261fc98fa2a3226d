"""Load our HTTP/1.1 request corpus: the ``*.http`` files here plus generated families.

File format (one file per theme, cases separated by ``## <id>`` lines)::

    ## double-space-after-method
    rfc: RFC 9112 §3
    about: the request line has exactly one SP between its parts
    expect: 400
    h11: same
    > GET  / HTTP/1.1\\r\\n
    > Host: a\\r\\n
    > \\r\\n

``> `` lines are the request bytes, with Python bytes escapes; the file's own line ends are
ignored, so every CR and LF is written out.  ``expect`` is ``ok`` or the status of the
``RemoteProtocolError``.  Valid cases list the requests they hold, in order, with ``< `` lines:
``< METHOD TARGET VERSION [body=<escaped bytes>]``.  ``h11`` is ``same`` when h11 (the referee)
reads the same requests or also refuses, else ``differs: <why>``.  ``limits`` overrides
``Limits`` fields (``limits: max_body_size=5 max_header_count=3``).
"""

from __future__ import annotations

import codecs
import dataclasses
from pathlib import Path

HERE = Path(__file__).parent


@dataclasses.dataclass(frozen=True)
class Expected:
    method: bytes
    target: bytes
    version: bytes
    body: bytes


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    data: bytes
    #: None for a valid case, else the status we answer with
    status: int | None
    requests: tuple[Expected, ...]
    rfc: str = ""
    about: str = ""
    #: None when h11 agrees, else why we differ
    h11_differs: str | None = None
    limits: tuple[tuple[str, int], ...] = ()

    @property
    def valid(self) -> bool:
        return self.status is None


def unescape(text: str) -> bytes:
    """Decode Python bytes escapes (``\\r``, ``\\x00``...) in ``text``."""
    raw: bytes = codecs.escape_decode(text.encode("latin-1"))[0]  # type: ignore[attr-defined]
    return raw


def _parse_expected(line: str) -> Expected:
    parts = line.split(" ", 3)
    method, target, version = (unescape(p) for p in parts[:3])
    body = b""
    if len(parts) == 4:
        assert parts[3].startswith("body="), line
        body = unescape(parts[3][len("body=") :])
    return Expected(method, target, version, body)


def _parse_case(case_id: str, lines: list[str], source: str) -> Case:
    fields: dict[str, str] = {}
    data = bytearray()
    expected = []
    for line in lines:
        if line.startswith("> ") or line == ">":
            data += unescape(line[2:])
        elif line.startswith("< "):
            expected.append(_parse_expected(line[2:]))
        elif line.strip() and not line.startswith("#"):
            key, sep, value = line.partition(":")
            assert sep, f"{source}: {case_id}: bad line {line!r}"
            fields[key.strip()] = value.strip()
    expect = fields.pop("expect")
    h11 = fields.pop("h11", "same")
    limits = tuple(
        (key, int(value))
        for key, value in (item.split("=") for item in fields.pop("limits", "").split())
    )
    case = Case(
        id=case_id,
        data=bytes(data),
        status=None if expect == "ok" else int(expect),
        requests=tuple(expected),
        rfc=fields.pop("rfc", ""),
        about=fields.pop("about", ""),
        h11_differs=None if h11 == "same" else h11.removeprefix("differs:").strip(),
        limits=limits,
    )
    assert not fields, f"{source}: {case_id}: unknown fields {sorted(fields)}"
    assert case.data, f"{source}: {case_id}: no request bytes"
    assert not case.valid or case.requests, f"{source}: {case_id}: no '<' lines"
    return case


def load_file(path: Path) -> list[Case]:
    cases = []
    current: str | None = None
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("## "):
            if current is not None:
                cases.append(_parse_case(current, lines, path.name))
            current, lines = raw[3:].strip(), []
        elif current is not None:
            lines.append(raw)
    if current is not None:
        cases.append(_parse_case(current, lines, path.name))
    return cases


def load_cases() -> list[Case]:
    """Every case: the ``*.http`` files, then the generated families."""
    from tests.http_cases.families import generated_cases

    cases = []
    for path in sorted(HERE.glob("*.http")):
        cases.extend(load_file(path))
    cases.extend(generated_cases())
    ids = [case.id for case in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate case ids: {duplicates}"
    return cases

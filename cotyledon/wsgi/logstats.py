"""``cotyledon-wsgi-logstats FILE...``: summarise ``cotyledon-wsgi`` access logs.

Job: the driver. Parse the command line, open each file (``-`` is standard input; gzip
files, such as logrotate's ``access.log.2.gz``, are recognised by their magic bytes),
stream its lines through :class:`~cotyledon.wsgi._logstats_core.Aggregator`, and print
the report as text or, with ``--json``, as the documented JSON schema.

Also runs as ``python -m cotyledon.wsgi.logstats``. A file that cannot be read is
reported on standard error and in the report, the other files are still read, and the
exit status is 1. Malformed lines never stop the run: they are counted and the first few
line numbers are reported. See doc/source/logstats.rst.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, cast

from cotyledon.wsgi._logstats_core import Aggregator, Options
from cotyledon.wsgi._logstats_parse import parse_moment
from cotyledon.wsgi._logstats_render import render_text

__all__ = ["main"]

_GZIP_MAGIC = b"\x1f\x8b"
_BUFFER = 1 << 20


def _moment(text: str) -> float:
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
        return value

    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotyledon-wsgi-logstats",
        description="Summarise cotyledon-wsgi access logs (combined or JSON format, "
        "detected per line; gzip files too).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="access log; '-' for stdin")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--top", type=_positive(int), default=10, metavar="N", help="rows per top list (10)"
    )
    parser.add_argument(
        "--bucket",
        type=_positive(float),
        metavar="SECONDS",
        help="bucket of the requests-per-second series (default: chosen from the span)",
    )
    parser.add_argument(
        "--since", type=_moment, metavar="TIME", help="only requests at or after TIME"
    )
    parser.add_argument("--until", type=_moment, metavar="TIME", help="only requests before TIME")
    parser.add_argument(
        "--max-paths",
        type=_positive(int),
        default=1000,
        metavar="N",
        help="distinct paths tracked; later ones are counted as (other) (1000)",
    )
    return parser


@contextmanager
def open_log(name: str) -> Iterator[IO[bytes]]:
    """A binary stream of the log's lines, decompressed if it is gzip."""
    if name == "-":
        raw: IO[bytes] = sys.stdin.buffer
    else:
        raw = open(name, "rb", buffering=_BUFFER)  # noqa: SIM115 - closed below
    try:
        if isinstance(raw, io.BufferedReader):
            buffered = raw
        else:  # a pipe or a test's stream: peek() needs a BufferedReader
            buffered = io.BufferedReader(cast(io.RawIOBase, raw))
        if buffered.peek(2)[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=buffered, mode="rb") as unzipped:
                yield cast(IO[bytes], unzipped)
        else:
            yield buffered
    finally:
        if name != "-":
            raw.close()


def analyse(names: Sequence[str], options: Options) -> tuple[Aggregator, list[str]]:
    """Feed every file to one aggregator; return it and the read errors."""
    aggregator = Aggregator(options)
    errors: list[str] = []
    for name in names:
        shown = "<stdin>" if name == "-" else name
        try:
            with open_log(name) as stream:
                aggregator.consume(stream, shown)
        except (OSError, EOFError, zlib.error) as exc:
            message = f"{type(exc).__name__}: {exc}"
            aggregator.source_failed(shown, message)
            errors.append(f"{shown}: {message}")
    return aggregator, errors


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = Options(
        top=args.top,
        bucket=args.bucket,
        since=args.since,
        until=args.until,
        max_paths=args.max_paths,
    )
    aggregator, errors = analyse(args.files, options)
    report = aggregator.report()
    for error in errors:
        print(f"cotyledon-wsgi-logstats: cannot read {error}", file=sys.stderr)
    text = json.dumps(report, indent=2) + "\n" if args.json else render_text(report)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `... | head`: not an error of ours
        sys.stderr.close()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every benchmark in one go and write bench/results/<date>.md.

``tox -e bench`` calls this. It only sequences the three benchmarks (never two at once:
they would steal each other's 2 cores) and concatenates their Markdown; the
measuring lives in supervision.py, wsgi_throughput.py, reload_under_load.py and
lb_lifecycle.py.
Usage: python bench/run_all.py [--quick] [--only supervision,throughput,reload,lb]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import lb_lifecycle
import reload_under_load
import supervision
import wsgi_throughput
from _common import BenchError, log, machine, markdown_to_rst, require_wrk, timed
from _servers import results_dir

BENCHMARKS = ("supervision", "throughput", "reload", "lb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, to check the harness")
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    args = parser.parse_args(argv)
    chosen = args.only.split(",")
    if {"throughput", "reload"} & set(chosen):
        try:
            require_wrk()
        except BenchError as exc:
            print(exc, file=sys.stderr)
            return 2
    sections = [
        f"# cotyledon benchmarks, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {machine()}.",
        "",
    ]
    if "supervision" in chosen:
        with timed("supervision"):
            argv_sup = ["--repeats", "1", "--sizes", "1,16"] if args.quick else []
            sections.append(supervision.main(argv_sup))
    if "throughput" in chosen:
        with timed("throughput"):
            argv_tp = ["--duration", "2", "--rounds", "1"] if args.quick else []
            sections.append(wsgi_throughput.main(argv_tp))
    if "reload" in chosen:
        with timed("reload"):
            argv_rl = ["--duration", "4", "--reloads", "1"] if args.quick else []
            sections.append(reload_under_load.main(argv_rl))
    if "lb" in chosen:
        with timed("lb"):
            sections.append(lb_lifecycle.main([]))
    out = results_dir() / f"{time.strftime('%Y-%m-%d')}.md"
    out.write_text("\n".join(sections))
    # The same figures as a reST fragment, to paste into doc/source/performance.rst.
    out.with_suffix(".rst").write_text(markdown_to_rst("\n".join(sections)))
    log(f"wrote {out} and {out.with_suffix('.rst').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared by the examples: the log format the functional tests assert byte for byte."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: int = logging.DEBUG) -> None:
    """``LEVEL:logger:message`` on stdout, as log pipelines of cotyledon 2.x see it."""
    fmt = "%(levelname)s:%(name)s:%(message)s"
    logging.basicConfig(level=level, stream=sys.stdout, format=fmt)


def say(text: str) -> None:
    """Print one line in one write, so lines of concurrent workers never interleave."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

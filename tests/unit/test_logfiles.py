"""cotyledon.wsgi._logfiles: reopen after a logrotate-style rename, on real files."""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotyledon.wsgi._logfiles import file_handlers, reopen_log_files


@pytest.fixture
def logger(tmp_path: Path) -> Iterator[logging.Logger]:
    log = logging.getLogger("cotyledon.tests.logfiles")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(logging.FileHandler(tmp_path / "error.log"))
    log.addHandler(logging.handlers.WatchedFileHandler(tmp_path / "other.log"))
    log.addHandler(logging.StreamHandler())  # not a file: left alone
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def test_rotated_files_are_reopened(logger: logging.Logger, tmp_path: Path) -> None:
    logger.info("before rotation")
    for name in ("error.log", "other.log"):
        (tmp_path / name).rename(tmp_path / f"{name}.1")
    assert reopen_log_files([logger]) == 2
    logger.info("after rotation")
    for name in ("error.log", "other.log"):
        assert (tmp_path / f"{name}.1").read_text() == "before rotation\n"
        assert (tmp_path / name).read_text() == "after rotation\n"


def test_handlers_are_found_on_named_loggers(logger: logging.Logger) -> None:
    found = file_handlers()
    mine = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    assert all(h in found for h in mine)
    assert len(found) == len({id(h) for h in found})


def test_reopen_without_a_record_in_between_is_harmless(
    logger: logging.Logger, tmp_path: Path
) -> None:
    reopen_log_files([logger])
    reopen_log_files([logger])
    logger.info("still fine")
    assert (tmp_path / "error.log").read_text() == "still fine\n"

"""The cotyledon-wsgi command line, in-process: parsing, errors naming the option,
environment defaults, --print-config, --check-config and --version."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from cotyledon.wsgi._cli import build_parser, config_from_args, main


def _missing(*names: str) -> list[str]:
    return [n for n in names if importlib.util.find_spec(f"cotyledon.wsgi.{n}") is None]


needs_bind = pytest.mark.skipif(bool(_missing("_bind")), reason="cotyledon.wsgi._bind missing")
needs_loader = pytest.mark.skipif(
    bool(_missing("_bind", "_app_loader")), reason="cotyledon.wsgi._app_loader missing"
)


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    code = info.value.code
    assert isinstance(code, int)
    return code


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["--version"]) == 0
    assert capsys.readouterr().out.startswith("cotyledon ")


def test_help_lists_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--workers", "--threads", "--bind", "--no-keepalive", "--check-config"):
        assert flag in out
    assert "Default: $WEB_CONCURRENCY, else 1." in " ".join(out.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-w", "0", "m:app"], "argument -w/--workers: must be an int >= 1, not: 0"),
        (["--threads", "many", "m:app"], "argument -t/--threads: must be an integer"),
        (["--keepalive-timeout", "soon", "m:app"], "--keepalive-timeout: must be a number"),
        (["--access-log-format", "xml", "m:app"], "--access-log-format: must be one of"),
        (["--root-path", "api/", "m:app"], "argument --root-path: must start with '/'"),
        (["--forwarded-allow-ips", "a.b", "m:app"], "not an IP address or network: 'a.b'"),
        (["--log-level", "chatty", "m:app"], "argument --log-level: must be one of"),
        (["--no-such-option", "m:app"], "unrecognized arguments: --no-such-option"),
        ([], "the app to serve is required"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_web_concurrency(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "lots")
    assert _exit_code(["m:app"]) == 2
    assert "WEB_CONCURRENCY: must be an integer" in capsys.readouterr().err


def _config(argv: list[str], environ: dict[str, str]) -> object:
    parser = build_parser()
    return config_from_args(parser, parser.parse_args(argv), environ)


def test_flags_beat_environment_beats_defaults() -> None:
    config = _config(["m:app"], {})
    assert (config.workers, config.threads) == (1, 8)  # type: ignore[attr-defined]
    config = _config(["m:app"], {"WEB_CONCURRENCY": "3"})
    assert config.workers == 3  # type: ignore[attr-defined]
    config = _config(["-w", "5", "m:app"], {"WEB_CONCURRENCY": "3"})
    assert config.workers == 5  # type: ignore[attr-defined]


def test_repeatable_and_switches() -> None:
    config = _config(
        ["-b", "127.0.0.1:1", "--bind", "unix:/tmp/s", "--no-keepalive", "--no-preload", "m:a"],
        {},
    )
    assert config.bind == ("127.0.0.1:1", "unix:/tmp/s")  # type: ignore[attr-defined]
    assert config.keepalive is False  # type: ignore[attr-defined]
    assert config.preload is False  # type: ignore[attr-defined]


@needs_bind
def test_print_config(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    assert main(["--print-config", "-t", "2", "examples.wsgi.hello:app"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["app"] == "examples.wsgi.hello:app"
    assert data["workers"] == 3
    assert data["threads"] == 2
    assert data["bind"] == ["0.0.0.0:9123"]


@needs_bind
def test_print_config_default_bind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("PORT", "LISTEN_FDS", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--print-config"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bind"] == ["127.0.0.1:8000"]
    assert data["app"] is None


@needs_loader
def test_check_config_ok(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    assert main(["--check-config", "examples.wsgi.hello:app"]) == 0
    assert "Configuration OK" in caplog.text


@needs_loader
def test_check_config_bad_app(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--check-config", "examples.wsgi.no_such_module:app"]) == 1
    assert "no_such_module" in caplog.text
    assert "no_such_module" not in sys.modules


@needs_loader
def test_check_config_bad_bind(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--check-config", "-b", "nonsense:port:x", "examples.wsgi.hello:app"]) == 1
    assert "Configuration check failed" in caplog.text

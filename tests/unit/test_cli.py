"""The cotyledon-wsgi command line, in-process: parsing, errors naming the option,
environment defaults, --print-config, --check-config and --version."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
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


def test_a_bad_value_is_one_line_without_the_usage_block(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _exit_code(["--threads", "many", "m:app"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "cotyledon-wsgi: error: argument -t/--threads: must be an integer, not: 'many'; "
        "see --help\n"
    )


def _help_entries(out: str) -> dict[str, str]:
    """``--help`` output -> {first flag of each option: its help text, on one line}."""
    entries: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        match = re.match(r"^  (-\S+)(.*)$", line)
        if match:
            flags, rest = match.group(1), match.group(2)
            # "  -w N, --workers N   Number of ..." : help starts after two spaces or more
            _, _, text = rest.partition("  ")
            current = flags.rstrip(",")
            entries[current] = text.strip()
        elif current is not None and line.startswith("    "):
            entries[current] = f"{entries[current]} {line.strip()}".strip()
        else:
            current = None
    return entries


def test_help_gives_every_option_a_text_and_one_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _exit_code(["--help"]) == 0
    entries = _help_entries(capsys.readouterr().out)
    for flag in ("--status-port", "--access-log-file", "--no-preload", "--version", "-h"):
        assert flag in entries
    for flag, text in entries.items():
        assert text, f"{flag} has no help text"
        assert text.count("Default:") <= 1, f"{flag}: {text}"
    assert entries["--status-port"].endswith("Default: off.")
    assert entries["--max-restarts"].endswith(
        "Default: never give up (a pause when workers die too fast)."
    )


@needs_bind
@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--print-config", "-b", "nope:xx"], {}, "invalid bind 'nope:xx': port 'xx'"),
        (["--print-config"], {"PORT": "abc"}, "invalid PORT 'abc' in the environment"),
    ],
)
def test_print_config_with_a_bad_bind_is_one_line(
    argv: list[str],
    environ: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cotyledon-wsgi: error: ")
    assert message in err
    assert err.count("\n") == 1


@needs_loader
def test_check_config_opens_every_bind(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        argv = ["--check-config", "-b", f"127.0.0.1:{port}", "examples.wsgi.hello:app"]
        assert main(argv) == 1
    assert f"Configuration check failed: cannot listen on 127.0.0.1:{port}: address" in (
        caplog.text
    )


@needs_loader
def test_check_config_names_an_fd_that_is_not_open(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        fd = probe.fileno()  # closed below: a number that names no open fd
    assert main(["--check-config", "-b", f"fd://{fd}", "examples.wsgi.hello:app"]) == 1
    assert f"cannot listen on fd://{fd}: fd {fd} is not open" in caplog.text


@needs_loader
def test_check_config_leaves_an_inherited_socket_open(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as inherited:
        inherited.bind(("127.0.0.1", 0))
        inherited.listen(1)
        fd = inherited.fileno()
        assert main(["--check-config", "-b", f"fd://{fd}", "examples.wsgi.hello:app"]) == 0
        assert inherited.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)


@needs_loader
@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("examples/wsgi/hello.py:app", "drop the .py, e.g. examples.wsgi.hello:app"),
        ("examples.wsgi.hello.py:app", "drop the .py, e.g. examples.wsgi.hello:app"),
    ],
)
def test_a_file_name_as_app_hints_to_drop_the_py(
    spec: str, hint: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["--check-config", spec]) == 1
    assert hint in caplog.text

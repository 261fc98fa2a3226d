"""ServerConfig: defaults, validation naming the setting, environment, generated docs."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from cotyledon.wsgi._config import (
    ConfigError,
    ServerConfig,
    environ_defaults,
    iter_options,
    make_config,
    option_flag,
    render_rst,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    config = ServerConfig()
    assert config.workers == 1
    assert config.threads == 8
    assert config.bind == ()
    assert config.keepalive is True
    assert config.forwarded_allow_ips == ("127.0.0.1", "::1")
    assert config.forwarded_headers == "x-forwarded"
    assert config.access_log_format == "combined"


def test_frozen() -> None:
    config = ServerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("workers", 0, "workers: must be an int >= 1, not: 0"),
        ("workers", "2", "workers: must be an int >= 1, not: '2' (str)"),
        ("workers", True, "workers: must be an int >= 1, not: True (bool)"),
        ("threads", -1, "threads: must be an int >= 1, not: -1"),
        ("max_queue", -1, "max_queue: must be an int >= 0, not: -1"),
        ("keepalive_timeout", 0, "keepalive_timeout: must be >= 0.001, not: 0"),
        ("graceful_timeout", float("nan"), "graceful_timeout: must be >= 0"),
        ("access_log_format", "xml", "access_log_format: must be one of combined, json"),
        ("log_level", "loud", "log_level: must be one of debug, info"),
        (
            "forwarded_headers",
            "both",
            "forwarded_headers: must be one of x-forwarded, forwarded",
        ),
        ("root_path", "api", "root_path: must start with '/'"),
        ("root_path", "/api/", "root_path: must start with '/' and not end with '/'"),
        ("forwarded_allow_ips", ("10.0.0.300",), "not an IP address or network: '10.0.0.300'"),
        ("bind", "127.0.0.1:80", "bind: must be a tuple of strings"),
        ("keepalive", "yes", "keepalive: must be True or False"),
    ],
)
def test_invalid_values_name_the_setting(name: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServerConfig(**{name: value})  # type: ignore[arg-type]
    assert message in str(info.value)
    assert info.value.option == name
    assert isinstance(info.value, ValueError)


def test_lists_become_tuples() -> None:
    config = make_config(bind=["127.0.0.1:1", "unix:/tmp/x"], forwarded_allow_ips=["*"])
    assert config.bind == ("127.0.0.1:1", "unix:/tmp/x")
    assert config.forwarded_allow_ips == ("*",)


def test_networks_accepted() -> None:
    config = make_config(forwarded_allow_ips=("10.0.0.0/8", "::1", "*"))
    assert config.forwarded_allow_ips == ("10.0.0.0/8", "::1", "*")


def test_unknown_setting_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^wrokers: unknown setting$"):
        make_config(wrokers=2)
    with pytest.raises(ConfigError, match=r"^nope: unknown setting$"):
        ServerConfig().replace(nope=1)


def test_replace_validates() -> None:
    config = ServerConfig().replace(workers=3)
    assert config.workers == 3
    with pytest.raises(ConfigError, match="workers"):
        config.replace(workers=0)


def test_as_dict_lists_every_setting() -> None:
    data = ServerConfig(bind=("a:1",)).as_dict()
    assert [name for name, _ in iter_options()] == list(data)
    assert data["bind"] == ["a:1"]


def test_every_setting_has_flag_and_help() -> None:
    flags = []
    for name, cli in iter_options():
        assert cli.help, name
        assert cli.flags[-1] == "--" + name.replace("_", "-"), name
        flags.extend(cli.flags)
    assert len(flags) == len(set(flags))
    assert option_flag("max_body_size") == "--max-body-size"


def test_web_concurrency() -> None:
    assert environ_defaults({"WEB_CONCURRENCY": "4"}) == {"workers": 4}
    assert environ_defaults({}) == {}
    assert environ_defaults({"WEB_CONCURRENCY": " "}) == {}
    for bad in ("0", "x", "+3", "٣"):
        with pytest.raises(ConfigError, match=r"^WEB_CONCURRENCY: "):
            environ_defaults({"WEB_CONCURRENCY": bad})


def test_rst_lists_every_flag() -> None:
    text = render_rst()
    for _, cli in iter_options():
        for flag in cli.flags:
            assert flag in text
    assert "--check-config" in text
    assert all(len(line) < 100 for line in text.splitlines())


def test_committed_cli_reference_is_current() -> None:
    committed = (ROOT / "doc" / "source" / "cli.rst").read_text()
    assert committed == render_rst(), (
        "doc/source/cli.rst is stale: run "
        "`python -m cotyledon.wsgi._config --rst > doc/source/cli.rst`"
    )


def test_docs_call_ctrl_c_a_quick_stop() -> None:
    """Ctrl-C (SIGINT) is the quick stop, as in gunicorn: requests in progress are cut.
    Every paragraph or table naming it says so; none promises they finish there."""
    for page in sorted((ROOT / "doc" / "source").glob("*.rst")):
        for paragraph in page.read_text().split("\n\n"):
            if "Ctrl-C" not in paragraph:
                continue
            assert "quick stop" in paragraph, f"{page.name}: {paragraph}"
            for line in paragraph.splitlines():
                assert "Ctrl-C" not in line or "finish" not in line, f"{page.name}: {line}"

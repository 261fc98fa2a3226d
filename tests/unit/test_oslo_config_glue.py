"""oslo_config_glue with a real oslo.config: options, link() vs setup(), hooks."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

cfg = pytest.importorskip("oslo_config.cfg")

import cotyledon  # noqa: E402
from cotyledon import oslo_config_glue  # noqa: E402


@pytest.fixture
def manager() -> Iterator[cotyledon.ServiceManager]:
    cotyledon.ServiceManager._process_runner_already_created = False
    yield cotyledon.ServiceManager()
    cotyledon.ServiceManager._process_runner_already_created = False


@pytest.fixture
def conf(tmp_path: Path) -> cfg.ConfigOpts:
    path = tmp_path / "app.conf"
    path.write_text("[DEFAULT]\ngraceful_shutdown_timeout = 7\n")
    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.StrOpt("greeting", default="hi", mutable=True)])
    conf([], project="test", default_config_files=[str(path)])
    conf.test_path = path  # type: ignore[attr-defined]
    return conf


def test_setup_registers_options_and_configures_the_manager(
    manager: cotyledon.ServiceManager, conf: cfg.ConfigOpts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cotyledon.oslo_config_glue")
    oslo_config_glue.setup(manager, conf)
    assert conf.graceful_shutdown_timeout == 7
    assert conf.log_options is True
    assert manager._graceful_shutdown_timeout == 7
    assert caplog.messages[0] == "Full set of CONF:"
    assert any("graceful_shutdown_timeout" in m for m in caplog.messages)
    assert len(manager._hooks["reload"]) == 1
    assert len(manager._hooks["new_worker"]) == 1


def test_link_does_not_register_options(
    manager: cotyledon.ServiceManager, conf: cfg.ConfigOpts
) -> None:
    # oslo.service registers options of the same names itself; ours must not clash.
    conf.register_opts(
        [cfg.IntOpt("graceful_shutdown_timeout", default=60), cfg.BoolOpt("log_options")]
    )
    oslo_config_glue.link(manager, conf, reload_method="mutate")
    assert manager._graceful_shutdown_timeout == 7


def test_setup_twice_on_a_fresh_conf_would_clash_but_link_never_does(
    manager: cotyledon.ServiceManager, conf: cfg.ConfigOpts
) -> None:
    oslo_config_glue.setup(manager, conf)
    oslo_config_glue.link(manager, conf)


def test_master_reload_hook_rereads_the_files(
    manager: cotyledon.ServiceManager, conf: cfg.ConfigOpts
) -> None:
    oslo_config_glue.setup(manager, conf)
    conf.test_path.write_text("[DEFAULT]\ngraceful_shutdown_timeout = 9\ngreeting = bye\n")
    manager._hooks["reload"][0]()
    assert conf.greeting == "bye"
    assert manager._graceful_shutdown_timeout == 9


def test_mutate_only_changes_mutable_options(
    manager: cotyledon.ServiceManager, tmp_path: Path
) -> None:
    path = tmp_path / "m.conf"
    path.write_text("[DEFAULT]\ngreeting = a\nfixed = a\n")
    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.StrOpt("greeting", mutable=True), cfg.StrOpt("fixed", mutable=False)])
    conf([], project="test", default_config_files=[str(path)])
    oslo_config_glue.setup(manager, conf, reload_method="mutate")
    path.write_text("[DEFAULT]\ngreeting = b\nfixed = b\n")
    manager._hooks["reload"][0]()
    assert conf.greeting == "b"
    assert conf.fixed == "a"


def test_new_worker_hook_arms_the_worker_reload(
    manager: cotyledon.ServiceManager, conf: cfg.ConfigOpts
) -> None:
    oslo_config_glue.setup(manager, conf)
    service = cotyledon.Service(0)
    manager._hooks["new_worker"][0](None, 0, service)
    conf.test_path.write_text("[DEFAULT]\ngreeting = again\n")
    service._on_reload_internal_hook()  # type: ignore[attr-defined]
    assert conf.greeting == "again"


def test_new_worker_hook_pickles_without_the_conf(
    manager: cotyledon.ServiceManager, conf: cfg.ConfigOpts
) -> None:
    oslo_config_glue.setup(manager, conf)
    hook = pickle.loads(pickle.dumps(manager._hooks["new_worker"][0]))
    service = cotyledon.Service(0)
    hook(None, 0, service)
    assert not hasattr(service, "_on_reload_internal_hook")


def test_bad_reload_method(manager: cotyledon.ServiceManager, conf: cfg.ConfigOpts) -> None:
    with pytest.raises(ValueError, match="reload_method"):
        oslo_config_glue.setup(manager, conf, reload_method="restart")


def test_list_opts_for_the_config_generator() -> None:
    ((group, opts),) = oslo_config_glue.list_opts()
    assert group is None
    assert sorted(opt.name for opt in opts) == ["graceful_shutdown_timeout", "log_options"]
    assert opts[0] is not oslo_config_glue._options[0]  # deep copies


def test_entry_point_is_declared() -> None:
    from importlib.metadata import PackageNotFoundError, distribution, entry_points

    try:
        distribution("cotyledon")
    except PackageNotFoundError:
        pytest.skip("cotyledon is not installed (run from a source tree): no entry points")
    eps = entry_points(group="oslo.config.opts")
    assert any(ep.value == "cotyledon.oslo_config_glue:list_opts" for ep in eps)

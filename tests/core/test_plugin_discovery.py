"""Plugins: entry-point discovery, plugins registered in code, and missing components."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from importlib import metadata
from typing import Any

import pytest

import tq.plugins
from tq import App, Component, Setting, hookimpl
from tq.errors import ImproperlyConfigured, MissingPluginError, PluginError
from tq.plugins import Plugins

AppFactory = Callable[..., App]


class UpperSerializer:
    """A serializer a test plugin provides: JSON-ish text, upper-cased."""

    content_type = "application/x-upper"
    content_encoding = "utf-8"

    def dumps(self, obj: Any) -> bytes:
        return repr(obj).upper().encode()

    def loads(self, data: bytes) -> Any:
        return data.decode()


class ExamplePlugin:
    """A plugin object registered in code: one serializer and one setting."""

    @hookimpl
    def tq_serializers(self) -> list[Component]:
        return [
            Component(
                "serializer",
                "upper",
                f"{__name__}:UpperSerializer",
                content_type="application/x-upper",
                doc="upper-case text",
            )
        ]

    @hookimpl
    def tq_settings(self) -> list[Setting]:
        return [Setting("example_level", 3, int, "How loud the example is.")]


class MemoryAgainPlugin:
    """A plugin that declares a transport name the core already uses."""

    @hookimpl
    def tq_transports(self) -> list[Component]:
        return [Component("transport", "memory", "somewhere:Else", schemes=("memory",))]


def test_entry_points_give_the_core_plugin_and_its_components(app: App) -> None:
    plugins = app.plugins
    assert {"json", "pickle"} <= set(plugins.components("serializer"))
    assert {"zlib", "gzip", "bz2", "lzma"} <= set(plugins.components("compressor"))
    assert "memory" in plugins.components("transport")
    assert "memory" in plugins.components("backend")
    assert {"plugins", "config", "call", "result"} <= set(plugins.components("command"))


def test_plugin_info_names_the_distribution_and_what_it_provides(app: App) -> None:
    core = next(info for info in app.plugins.info() if info.name == "core")
    assert core.distribution == "tq-core"
    assert core.version
    assert "serializer:json" in core.provides
    assert "transport:memory" in core.provides


def test_core_components_are_lazily_imported_factories(app: App) -> None:
    component = app.plugins.get("compressor", "zlib")
    assert component.factory == "tq.builtins.compressors:zlib_compressor"
    assert component.load()().decompress(component.load()().compress(b"x")) == b"x"


def test_a_plugin_registered_in_code_adds_a_component_and_a_setting(
    make_app: AppFactory,
) -> None:
    app = make_app(plugins=[ExamplePlugin()], example_level=7)
    assert app.conf["example_level"] == 7
    assert app.codecs.serializer("upper").dumps("hi") == b"'HI'"
    assert "upper" in app.plugins.components("serializer")


def test_register_plugin_after_creation_learns_its_settings_from_the_environment(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TQ_EXAMPLE_LEVEL", "11")
    app.register_plugin(ExamplePlugin())
    assert app.conf["example_level"] == 11
    assert "upper" in app.plugins.components("serializer")


def test_a_plugin_info_lists_plugins_registered_in_code(make_app: AppFactory) -> None:
    app = make_app()
    app.register_plugin(ExamplePlugin(), name="example")
    example = next(info for info in app.plugins.info() if info.name == "example")
    assert example.distribution == "(registered in code)"
    assert example.provides == ("serializer:upper",)


def test_a_component_name_declared_twice_is_rejected_when_the_plugin_registers(
    make_app: AppFactory,
) -> None:
    with pytest.raises(PluginError, match="transport 'memory' is declared twice"):
        make_app(plugins=[MemoryAgainPlugin()])


def test_a_conflicting_plugin_registered_later_is_rejected_at_once(app: App) -> None:
    with pytest.raises(PluginError, match="declared twice"):
        app.register_plugin(MemoryAgainPlugin())


def test_a_setting_declared_twice_is_rejected_when_the_plugin_registers(
    make_app: AppFactory,
) -> None:
    class Shadowing:
        @hookimpl
        def tq_settings(self) -> list[Setting]:
            return [Setting("broker_url", None, str, "again")]

    with pytest.raises(PluginError, match="broker_url"):
        make_app(plugins=[Shadowing()])


def test_a_hook_returning_the_wrong_kind_is_a_plugin_error() -> None:
    class Confused:
        @hookimpl
        def tq_pools(self) -> list[Component]:
            return [Component("serializer", "oops", "a:b")]

    plugins = Plugins(autoload=False)
    with pytest.raises(PluginError, match=r"expected Component\(kind='pool'"):
        plugins.register(Confused())


def test_a_component_factory_must_be_a_module_colon_attribute_path() -> None:
    with pytest.raises(PluginError, match="module:attribute"):
        Component("serializer", "bad", "tq.builtins.serializers.JSONSerializer")


def test_a_known_missing_transport_names_the_package_to_install(make_app: AppFactory) -> None:
    app = make_app(broker="sqs://key:secret@")
    with pytest.raises(MissingPluginError) as caught:
        _ = app.transport
    assert (
        str(caught.value) == "No transport for 'sqs://'. Install it with: pip install \"tq[sqs]\""
    )


def test_a_known_missing_result_backend_names_the_package_to_install(
    make_app: AppFactory,
) -> None:
    app = make_app(backend="mongodb://localhost/")
    with pytest.raises(MissingPluginError, match=r'pip install "tq\[mongodb\]"'):
        _ = app.backend


def test_an_unknown_scheme_lists_the_schemes_that_are_available(make_app: AppFactory) -> None:
    app = make_app(broker="carrier-pigeon://coop")
    with pytest.raises(
        MissingPluginError,
        match=r"No transport for 'carrier-pigeon://'\. "
        r"Available: .*memory",
    ):
        _ = app.transport


def test_an_unknown_serializer_is_a_missing_plugin_error(app: App) -> None:
    with pytest.raises(MissingPluginError, match=r'pip install "tq\[msgpack\]"'):
        app.codecs.serializer("msgpack")


@pytest.fixture
def extra_entry_point(monkeypatch: pytest.MonkeyPatch) -> str:
    """A second installed plugin, ``extra``, found through the ``tq`` entry-point group."""
    module = types.ModuleType("tq_test_extra_plugin")

    @hookimpl
    def tq_compressors() -> list[Component]:
        return [Component("compressor", "identity", f"{__name__}:UpperSerializer")]

    module.tq_compressors = tq_compressors  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    extra = metadata.EntryPoint(name="extra", value=module.__name__, group="tq")
    found = (*tq.plugins._entry_points(), extra)
    monkeypatch.setattr(tq.plugins, "_entry_points", lambda: found)
    return "extra"


def test_third_party_entry_points_are_loaded_like_the_core(
    make_app: AppFactory, extra_entry_point: str
) -> None:
    app = make_app()
    assert "identity" in app.plugins.components("compressor")
    assert extra_entry_point in [info.name for info in app.plugins.info()]


def test_disable_plugins_setting_skips_named_entry_points(
    make_app: AppFactory, extra_entry_point: str
) -> None:
    app = make_app(disable_plugins=[extra_entry_point])
    assert "identity" not in app.plugins.components("compressor")
    assert "zlib" in app.plugins.components("compressor")
    assert app.conf["disable_plugins"] == [extra_entry_point]


def test_an_entry_point_that_fails_to_import_is_a_plugin_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = metadata.EntryPoint(name="broken", value="no_such_module_for_tq", group="tq")
    monkeypatch.setattr(tq.plugins, "_entry_points", lambda: (broken,))
    with pytest.raises(PluginError, match=r"plugin 'broken'.*failed to import"):
        Plugins()


def test_a_url_without_a_scheme_is_a_configuration_error(make_app: AppFactory) -> None:
    app = make_app(broker="/var/run/broker.sock")
    with pytest.raises(ImproperlyConfigured, match="is not a URL"):
        _ = app.transport


def test_disabling_autoload_leaves_only_the_core_plugin(
    monkeypatch: pytest.MonkeyPatch, extra_entry_point: str
) -> None:
    monkeypatch.setenv("TQ_DISABLE_PLUGIN_AUTOLOAD", "1")
    app = App("bare", broker="memory://bare")
    assert [info.name for info in app.plugins.info()] == ["core"]
    assert "identity" not in app.plugins.components("compressor")
    assert "memory" in app.plugins.components("transport")
    assert app.conf["broker_url"] == "memory://bare"


def test_plugins_registered_in_code_still_load_with_autoload_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TQ_DISABLE_PLUGIN_AUTOLOAD", "1")
    app = App("bare", plugins=[ExamplePlugin()], example_level=1)
    assert "upper" in app.plugins.components("serializer")
    assert app.conf["example_level"] == 1

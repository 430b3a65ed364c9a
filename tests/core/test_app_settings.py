"""Settings: Celery's names, layered precedence, helpful errors and censored output."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator

import pytest

from tq import App
from tq.errors import ImproperlyConfigured
from tq.settings import censor_url

AppFactory = Callable[..., App]


@pytest.fixture
def config_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """A settings module importable as ``tq_test_config`` for the length of one test."""
    module = types.ModuleType("tq_test_config")
    module.task_serializer = "pickle"  # type: ignore[attr-defined]
    module.result_expires = 60  # type: ignore[attr-defined]
    module.task_default_queue = "from-config"  # type: ignore[attr-defined]

    class Config:
        task_default_queue = "from-config-object"
        task_track_started = True

    module.Config = Config  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tq_test_config", module)
    yield module


def test_defaults_are_celery_defaults_with_tq_names(app: App) -> None:
    assert app.conf["task_serializer"] == "json"
    assert app.conf["accept_content"] == ["json"]
    assert app.conf.task_default_queue == "tq"
    assert app.conf["task_always_eager"] is False
    assert app.conf["result_expires"] == 86400
    assert app.conf.task_acks_late is True


def test_constructor_arguments_set_broker_and_backend(make_app: AppFactory) -> None:
    app = make_app(broker="memory://a", backend="memory://b", task_default_queue="q")
    assert app.conf.broker_url == "memory://a"
    assert app.conf["result_backend"] == "memory://b"
    assert app.conf["task_default_queue"] == "q"


def test_config_from_object_reads_a_module_by_name(app: App, config_module: object) -> None:
    app.conf.config_from_object("tq_test_config")
    assert app.conf["task_serializer"] == "pickle"
    assert app.conf["result_expires"] == 60


def test_config_from_object_reads_module_colon_object(app: App, config_module: object) -> None:
    app.conf.config_from_object("tq_test_config:Config")
    assert app.conf["task_default_queue"] == "from-config-object"
    assert app.conf["task_track_started"] is True


def test_config_from_object_reads_an_object_and_a_dict(app: App) -> None:
    class Config:
        task_time_limit = 30

    app.conf.config_from_object(Config)
    app.conf.config_from_object({"task_soft_time_limit": 20})
    assert app.conf["task_time_limit"] == 30
    assert app.conf["task_soft_time_limit"] == 20


def test_config_from_object_skips_private_names_modules_and_functions(app: App) -> None:
    module = types.ModuleType("cfg")
    module._private = 1  # type: ignore[attr-defined]
    module.sys = sys  # type: ignore[attr-defined]
    module.helper = lambda: None  # type: ignore[attr-defined]
    module.timezone = "Europe/Paris"  # type: ignore[attr-defined]
    app.conf.config_from_object(module)
    assert app.conf["timezone"] == "Europe/Paris"


def test_config_from_object_with_a_namespace_reads_prefixed_uppercase_names(app: App) -> None:
    app.conf.config_from_object({"TQ_TASK_DEFAULT_QUEUE": "django", "DEBUG": True}, namespace="TQ")
    assert app.conf["task_default_queue"] == "django"


def test_a_missing_config_module_is_a_configuration_error(app: App) -> None:
    with pytest.raises(ImproperlyConfigured, match="no_such_tq_config"):
        app.conf.config_from_object("no_such_tq_config")


def test_config_from_envvar_reads_the_module_the_variable_names(
    app: App, config_module: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_TQ_CONFIG", "tq_test_config")
    assert app.conf.config_from_envvar("MY_TQ_CONFIG") is True
    assert app.conf["task_serializer"] == "pickle"


def test_config_from_envvar_without_the_variable_errors_unless_silent(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MY_TQ_CONFIG", raising=False)
    with pytest.raises(ImproperlyConfigured, match="MY_TQ_CONFIG"):
        app.conf.config_from_envvar("MY_TQ_CONFIG")
    assert app.conf.config_from_envvar("MY_TQ_CONFIG", silent=True) is False


def test_precedence_is_defaults_then_config_then_environment_then_explicit(
    make_app: AppFactory, config_module: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    assert app.conf["task_default_queue"] == "tq"
    app.conf.config_from_object("tq_test_config")
    assert app.conf["task_default_queue"] == "from-config"

    monkeypatch.setenv("TQ_TASK_DEFAULT_QUEUE", "from-env")
    app = make_app()
    app.conf.config_from_object("tq_test_config")
    assert app.conf["task_default_queue"] == "from-env"

    app.conf.update(task_default_queue="explicit")
    assert app.conf["task_default_queue"] == "explicit"
    assert make_app(task_default_queue="kwarg").conf["task_default_queue"] == "kwarg"


def test_attribute_assignment_is_an_explicit_value(app: App) -> None:
    app.conf.task_default_queue = "set-by-attribute"
    assert app.conf["task_default_queue"] == "set-by-attribute"


def test_environment_values_are_converted_to_the_setting_type(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TQ_TASK_ALWAYS_EAGER", "yes")
    monkeypatch.setenv("TQ_TASK_ACKS_LATE", "0")
    monkeypatch.setenv("TQ_TASK_MAX_DELIVERIES", "9")
    monkeypatch.setenv("TQ_ACCEPT_CONTENT", '["json", "pickle"]')
    monkeypatch.setenv("TQ_RESULT_EXPIRES", "1.5")
    conf = make_app().conf
    assert conf["task_always_eager"] is True
    assert conf["task_acks_late"] is False
    assert conf["task_max_deliveries"] == 9
    assert conf["accept_content"] == ["json", "pickle"]
    assert conf["result_expires"] == 1.5


def test_an_environment_value_that_cannot_be_converted_names_the_variable(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TQ_ACCEPT_CONTENT", "json, pickle")
    with pytest.raises(ImproperlyConfigured, match="TQ_ACCEPT_CONTENT"):
        make_app()


def test_unknown_setting_in_update_suggests_closest_name(app: App) -> None:
    with pytest.raises(ImproperlyConfigured, match="Did you mean 'task_serializer'"):
        app.conf.update(task_serialiser="json")


def test_unknown_setting_set_as_attribute_suggests_closest_name(app: App) -> None:
    with pytest.raises(ImproperlyConfigured, match="Did you mean 'broker_url'"):
        app.conf.brokr_url = "memory://"


def test_unknown_setting_read_as_attribute_is_an_attribute_error(app: App) -> None:
    with pytest.raises(AttributeError, match="result_backend"):
        _ = app.conf.result_backnd


def test_unknown_setting_in_a_config_object_suggests_closest_name(app: App) -> None:
    with pytest.raises(ImproperlyConfigured, match="Did you mean 'task_routes'"):
        app.conf.config_from_object({"task_route": {}})


def test_unknown_setting_passed_to_the_app_is_an_error(make_app: AppFactory) -> None:
    with pytest.raises(ImproperlyConfigured, match="Unknown setting 'task_alwys_eager'"):
        make_app(task_alwys_eager=True)


def test_humanize_lists_changed_settings_with_passwords_censored(make_app: AppFactory) -> None:
    app = make_app(
        broker="redis://user:hunter2@broker.example:6379/0",
        backend="redis://:s3cret@results.example/1",
    )
    text = app.conf.humanize()
    assert "hunter2" not in text and "s3cret" not in text
    assert "broker_url: 'redis://user:**@broker.example:6379/0'" in text
    assert "result_backend: 'redis://:**@results.example/1'" in text
    assert "task_serializer" not in text  # unchanged settings are left out
    assert "task_serializer: 'json'" in app.conf.humanize(with_defaults=True)


def test_humanize_censors_secret_looking_options(make_app: AppFactory) -> None:
    app = make_app(broker_transport_options={"password": "pw-123", "visibility_timeout": 5})
    text = app.conf.humanize()
    assert "pw-123" not in text
    assert "'visibility_timeout': 5" in text
    assert "pw-123" in app.conf.humanize(censored=False)


def test_censor_url_leaves_urls_without_password_alone() -> None:
    assert censor_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert censor_url("amqp://guest:guest@rabbit//") == "amqp://guest:**@rabbit//"
    assert censor_url("not a url") == "not a url"


def test_censor_url_keeps_ipv6_hosts_bracketed() -> None:
    assert censor_url("redis://:pw@[::1]:6379/0") == "redis://:**@[::1]:6379/0"


def test_a_config_module_may_set_task_routes_to_a_router_function(app: App) -> None:
    def route(name: str, args: object, kwargs: object, options: object) -> str:
        return "routed"

    module = types.ModuleType("routes_config")
    module.task_routes = route  # type: ignore[attr-defined]
    app.conf.config_from_object(module)
    assert app.conf["task_routes"] is route

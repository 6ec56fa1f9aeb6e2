"""`meshscope.config`: the one configuration reader (typed getters, ranges, one error type)."""

from __future__ import annotations

import pytest

from meshscope.config import MAX_SECONDS, Config, ConfigError
from meshscope.discovery.config import ConsulSettings, DiscoverySettings
from meshscope.discovery.errors import DiscoveryConfigError
from meshscope.orchestrator.config import OrchestratorConfigError, OrchestratorSettings
from meshscope.services.runtime.config import ServerSettings
from meshscope.services.runtime.errors import ConfigError as RuntimeConfigError


def _error(config: Config, read: str, *args: object, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        getattr(config, read)(*args, **kwargs)
    return str(info.value)


def test_unset_and_blank_give_the_default_and_values_are_stripped() -> None:
    config = Config({"BLANK": "  ", "EMPTY": "", "SET": " 7 "})
    for name in ("BLANK", "EMPTY", "UNSET"):
        assert config.seconds(name, 1.5) == 1.5
        assert config.count(name, 3) == 3
        assert config.bytes(name, 4) == 4
        assert config.port(name, 50051) == 50051
        assert config.flag(name, True) is True
        assert config.string(name, "dflt") == "dflt"
        assert config.optional(name) is None
        assert config.choice(name, "consul", ("consul", "static")) == "consul"
        assert config.host_port(name, ("127.0.0.1", 8500)) == ("127.0.0.1", 8500)
    assert config.seconds("SET", 1.0) == 7.0
    assert config.count("SET", 1) == 7
    assert config.string("SET", "") == "7"


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e10", "-0.5", "soon"])
def test_seconds_are_finite_and_in_range(value: str) -> None:
    message = _error(Config({"T_S": value}), "seconds", "T_S", 1.0)
    assert message == f"T_S={value!r} is not valid: expected seconds 0-2000000"


def test_seconds_take_their_own_bounds_and_show_them_plainly() -> None:
    config = Config({"A": "0.05", "B": "2000000", "C": "3601"})
    assert _error(config, "seconds", "A", 1.0, minimum=0.1) == (
        "A='0.05' is not valid: expected seconds 0.1-2000000"
    )
    assert config.seconds("B", 1.0) == MAX_SECONDS  # bounds are inclusive
    assert _error(config, "seconds", "C", 1.0, maximum=3600.0) == (
        "C='3601' is not valid: expected seconds 0-3600"
    )


@pytest.mark.parametrize("value", ["0", "-1", "2147483648", "1.5", "nan", "inf", "many"])
def test_counts_are_whole_numbers_in_range(value: str) -> None:
    assert _error(Config({"N": value}), "count", "N", 1) == (
        f"N={value!r} is not valid: expected a count 1-2147483647"
    )


def test_integers_bytes_and_ports_name_what_they_expect() -> None:
    config = Config({"R": "11", "B": "0", "P": "65536", "Q": "65535"})
    assert (
        _error(config, "integer", "R", 2, minimum=0, maximum=10)
        == "R='11' is not valid: expected an integer 0-10"
    )
    assert _error(config, "bytes", "B", 1) == "B='0' is not valid: expected bytes 1-2147483647"
    assert _error(config, "port", "P", 1) == "P='65536' is not valid: expected a port 0-65535"
    assert config.port("Q", 1) == 65535


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("TRUE", True), ("yes", True), ("0", False), ("False", False), ("no", False)],
)
def test_flags(value: str, expected: bool) -> None:
    assert Config({"F": value}).flag("F", not expected) is expected


def test_a_bad_flag_and_a_bad_choice_list_what_is_accepted() -> None:
    config = Config({"F": "maybe", "D": "Etcd"})
    assert _error(config, "flag", "F", True) == "F='maybe' is not valid: expected true or false"
    assert _error(config, "choice", "D", "consul", ("consul", "static")) == (
        "D='etcd' is not valid: expected consul or static"
    )
    assert Config({"D": "STATIC"}).choice("D", "consul", ("consul", "static")) == "static"


def test_host_port() -> None:
    assert Config({"A": "[::1]:8500"}).host_port("A", ("x", 1)) == ("::1", 8500)
    assert _error(Config({"A": "localhost"}), "host_port", "A", ("x", 1)) == "A: 'localhost' is not host:port"


def test_one_error_type_under_every_old_name() -> None:
    """Every part raises the same class, so one `except ConfigError` in the CLI covers them all."""
    assert issubclass(ConfigError, ValueError)
    assert DiscoveryConfigError is ConfigError
    assert OrchestratorConfigError is ConfigError
    assert RuntimeConfigError is ConfigError
    for read, env in (
        (ServerSettings.from_env, {"MESHSCOPE_PORT": "x"}),
        (OrchestratorSettings.from_env, {"MESHSCOPE_RETRY_ATTEMPTS": "x"}),
        (ConsulSettings.from_env, {"CONSUL_HTTP_SSL": "x"}),
        (DiscoverySettings.from_env, {"MESHSCOPE_DISCOVERY": "x"}),
    ):
        with pytest.raises(ConfigError, match=r"^\w+='x' is not valid: expected "):
            read(env)


def test_the_orchestrator_reads_counts_as_whole_numbers_and_ports_as_ports() -> None:
    """It parsed every knob as a float: `2.5` attempts were 2, and a bad port had its own message."""
    settings = OrchestratorSettings.from_env(
        {"MESHSCOPE_RETRY_ATTEMPTS": "4", "MESHSCOPE_ORCHESTRATOR_PORT": "0"}
    )
    assert (settings.retry_attempts, settings.port) == (4, 0)
    with pytest.raises(
        ConfigError, match=r"^MESHSCOPE_RETRY_ATTEMPTS='2.5' is not valid: expected a count 1-"
    ):
        OrchestratorSettings.from_env({"MESHSCOPE_RETRY_ATTEMPTS": "2.5"})
    with pytest.raises(
        ConfigError, match=r"^MESHSCOPE_ORCHESTRATOR_PORT='70000' is not valid: expected a port 0-65535$"
    ):
        OrchestratorSettings.from_env({"MESHSCOPE_ORCHESTRATOR_PORT": "70000"})
    with pytest.raises(
        ConfigError, match=r"^MESHSCOPE_PANIC_GRACE_S='3601' is not valid: expected seconds 0-3600$"
    ):
        OrchestratorSettings.from_env({"MESHSCOPE_PANIC_GRACE_S": "3601"})

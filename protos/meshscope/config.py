"""The one configuration reader: typed getters over the environment, one error type.

Every part of meshscope (agent services, the session store, the orchestrator, discovery, the
model factory, the CLI) reads its knobs through `Config`, so every knob is parsed, range-checked
and reported the same way. The variables, their defaults and ranges are listed in
docs/configuration.md (tests/unit/test_config_documented.py keeps the two in step).

    config = Config()                      # over os.environ; Config({...}) over any mapping
    grace = config.seconds("MESHSCOPE_SHUTDOWN_GRACE_S", 10.0)
    port = config.port("MESHSCOPE_PORT", 50051)

Rules shared by every getter:
- a variable that is unset or blank (white space only) gives the default; values are stripped;
- a bad value raises `ConfigError`, whose message is one line naming the variable, the value
  and what was expected: ``NAME='value' is not valid: expected seconds 0-2000000``;
- numbers are finite: nan and inf are refused by every numeric getter.

Stdlib only: the CLI imports this at start and must stay fast (`meshscope --help` in ~40 ms).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from urllib.parse import urlparse

__all__ = [
    "MAX_BYTES",
    "MAX_SECONDS",
    "Config",
    "ConfigError",
    "parse_host_port",
]

MAX_SECONDS = 2_000_000.0
"""Default upper bound of a duration knob: gRPC and Consul take durations as 32-bit milliseconds."""
MAX_BYTES = 2**31 - 1
"""Upper bound of a size knob: gRPC's message limits are 32-bit integers."""


class ConfigError(ValueError):
    """Bad flags, environment or configuration: the process must not start.

    The message is one line naming the flag or variable; the CLI prints it as
    ``meshscope: <message>`` and exits with status 2.
    """


def describe(value: float) -> str:
    """A bound as a message shows it: `0`, `0.1`, `2000000` (never `2e+06`)."""
    if value == int(value):
        return str(int(value))
    return f"{value:g}"


def parse_host_port(value: str, what: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:port`, port 1-65535) as (host, port); errors name `what`.

    Raises ConfigError ``{what}: 'value' is not host:port``.
    """
    parsed = urlparse(f"//{value.strip()}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None or port == 0:
        raise ConfigError(f"{what}: {value!r} is not host:port")
    return parsed.hostname, port


class Config:
    """Typed, validated reads of configuration variables from one mapping (default: os.environ).

    Each getter takes the variable's name and its default, returns the default when the
    variable is unset or blank, and raises `ConfigError` naming the variable otherwise.
    The mapping is read at each call: build a settings object once at start (the
    `*Settings.from_env` classmethods do) rather than reading knobs on a hot path.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env: Mapping[str, str] = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        """The stripped value of `name`, or None when it is unset or blank."""
        value = self._env.get(name, "").strip()
        return value or None

    def invalid(self, name: str, raw: str, expected: str) -> ConfigError:
        """The error for a bad value: ``NAME='raw' is not valid: expected <expected>``."""
        return ConfigError(f"{name}={raw!r} is not valid: expected {expected}")

    def string(self, name: str, default: str) -> str:
        """The value as it is (stripped), or `default`."""
        return self.raw(name) or default

    def optional(self, name: str) -> str | None:
        """The value (stripped), or None when unset or blank."""
        return self.raw(name)

    def number(self, name: str, default: float, *, minimum: float, maximum: float, unit: str = "") -> float:
        """A finite float in [minimum, maximum]; `unit` (e.g. "seconds") names it in the error."""
        raw = self.raw(name)
        if raw is None:
            return default
        expected = f"{unit + ' ' if unit else ''}{describe(minimum)}-{describe(maximum)}"
        try:
            value = float(raw)
        except ValueError:
            raise self.invalid(name, raw, expected) from None
        if not minimum <= value <= maximum:  # also refuses nan; inf is above every maximum
            raise self.invalid(name, raw, expected)
        return value

    def seconds(
        self, name: str, default: float, *, minimum: float = 0.0, maximum: float = MAX_SECONDS
    ) -> float:
        """A duration in seconds, [minimum, maximum] (0-2000000 unless given): ``seconds 0-2000000``."""
        return self.number(name, default, minimum=minimum, maximum=maximum, unit="seconds")

    def integer(
        self, name: str, default: int, *, minimum: int, maximum: int, what: str = "an integer"
    ) -> int:
        """A whole number in [minimum, maximum] (decimal, no fraction): ``expected <what> 0-10``."""
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self.invalid(name, raw, f"{what} {minimum}-{maximum}") from None
        if not minimum <= value <= maximum:
            raise self.invalid(name, raw, f"{what} {minimum}-{maximum}")
        return value

    def count(self, name: str, default: int, *, minimum: int = 1, maximum: int = MAX_BYTES) -> int:
        """How many of something, [minimum, maximum] (1-2147483647 unless given): ``expected a count 1-N``."""
        return self.integer(name, default, minimum=minimum, maximum=maximum, what="a count")

    def bytes(self, name: str, default: int, *, minimum: int = 1, maximum: int = MAX_BYTES) -> int:
        """A size in bytes, [minimum, maximum] (1-2147483647 unless given): ``expected bytes 1-N``."""
        return self.integer(name, default, minimum=minimum, maximum=maximum, what="bytes")

    def port(self, name: str, default: int) -> int:
        """A TCP port 0-65535 (0: any free port): ``expected a port 0-65535``."""
        return self.integer(name, default, minimum=0, maximum=65535, what="a port")

    def flag(self, name: str, default: bool) -> bool:
        """true/false, 1/0, yes/no (any case): ``expected true or false``."""
        raw = self.raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise self.invalid(name, lowered, "true or false")

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        """One of `choices`, compared in lower case: ``expected consul or static``."""
        raw = self.raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered not in choices:
            listed = ", ".join(choices[:-1]) + (" or " if len(choices) > 1 else "") + choices[-1]
            raise self.invalid(name, lowered, listed)
        return lowered

    def host_port(self, name: str, default: tuple[str, int]) -> tuple[str, int]:
        """`host:port` (IPv6 as `[::1]:port`, port 1-65535): ``NAME: 'value' is not host:port``."""
        raw = self.raw(name)
        if raw is None:
            return default
        return parse_host_port(raw, name)

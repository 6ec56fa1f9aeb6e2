"""Discovery errors.

`DiscoveryConfigError` is `meshscope.config.ConfigError` under its old name: bad discovery
configuration is bad configuration like any other (one line, exit status 2).
"""

from meshscope.config import ConfigError as DiscoveryConfigError

__all__ = ["DiscoveryConfigError"]

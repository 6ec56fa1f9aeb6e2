"""Discovery errors."""


class DiscoveryConfigError(ValueError):
    """Bad discovery configuration; the process must not start. One line."""

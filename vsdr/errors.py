"""Errors shown to the user as one sentence."""


class ConfigError(ValueError):
    """A configuration or input that cannot run; its message is one sentence for the user."""

"""Errors shown to the user as one sentence."""


class ConfigError(ValueError):
    """A configuration or input that cannot run; its message is one sentence for the user."""


class JobFault(RuntimeError):
    """A fault while a valid job runs (NaN in sampling, results that cannot be written); its
    message is one sentence for the user."""


class NonFiniteError(JobFault, FloatingPointError):
    """Sampling produced a NaN or an infinity; the message names the step."""

"""Errors shown to the user as one sentence."""


class ConfigError(ValueError):
    """A configuration or input that cannot run; its message is one sentence for the user."""


class JobFault(RuntimeError):
    """A fault while a valid job runs (NaN in sampling, results that cannot be written); its
    message is one sentence for the user."""


class NonFiniteError(JobFault, FloatingPointError):
    """Sampling produced a NaN or an infinity; the message names the step."""


class DDPWorkerDone(Exception):
    """A DDP worker (rank > 0) has done its part (training, or nothing when the network is
    cached): rank 0 caches the network and runs the job. ``run.py`` ends the worker quietly
    with exit status 0; under submitit the task returns normally (a ``SystemExit`` there would
    leave no result file, and the sweep would wait for it forever)."""

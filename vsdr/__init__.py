"""vsdr: variance-scaled diffusion restoration."""
__version__ = "0.1.0"

from vsdr.config import register_resolvers as _register_resolvers  # noqa: E402

_register_resolvers()

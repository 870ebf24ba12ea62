"""Kept so a conftest written for ptq 0.1 (``ptq.run.config.register_section``) still imports:
the config moved to :mod:`ptq.config`, below every layer that reads it."""

from ptq.config import *  # noqa: F403
from ptq.config import __all__  # noqa: F401

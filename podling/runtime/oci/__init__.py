"""The RuntimeService on runc + conmon with a catatonit pause sandbox (see service.py)."""

from .cleanup import purge
from .service import OciRuntime, OciRuntimeConfig

__all__ = ["OciRuntime", "OciRuntimeConfig", "purge"]

"""Async client for the podling API: REST (:class:`ApiClient`) and informers.

Only ``podling.api`` and ``podling.util`` may be imported from here (docs/architecture.md §2).
"""

from ..api.errors import ApiError
from .backoff import Backoff, BackoffPolicy
from .config import ClientConfig, ConfigError
from .errors import ApiConnectionError, Expired
from .informer import ADDED, DELETED, MODIFIED, SYNC, Informer, InformerOptions
from .rest import ApiClient, resource_path

__all__ = [
    "ADDED", "DELETED", "MODIFIED", "SYNC", "ApiClient", "ApiConnectionError", "ApiError",
    "Backoff", "BackoffPolicy", "ClientConfig", "ConfigError", "Expired", "Informer",
    "InformerOptions", "resource_path",
]

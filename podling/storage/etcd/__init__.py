"""The etcd backend: :class:`~.store.EtcdStore` over our own small gateway client."""

from .client import EtcdClient, EtcdError, EtcdUnavailable
from .store import DEFAULT_PREFIX, EtcdStore

__all__ = ["DEFAULT_PREFIX", "EtcdClient", "EtcdError", "EtcdStore", "EtcdUnavailable"]

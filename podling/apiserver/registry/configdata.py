"""ConfigMaps and Secrets: payload preparation and validation.

Both are plain objects without status or graceful deletion. A Secret's ``stringData`` is
merged into ``data`` and dropped before validation, on create and on every update (PUT or
patch), and its ``type`` defaults to Opaque, exactly where Kubernetes' conversion and
defaulting do it; ``[]byte`` values are stored as canonical base64
(:mod:`podling.api.configdata`). A TLS Secret whose certificate and key are no pair is stored
with a warning (:mod:`.tlspair`).
"""

from __future__ import annotations

from ...api import configdata, validation
from ...api.errors import Cause
from ...api.validation.configdata import TLS, TLS_CERT_KEY, TLS_PRIVATE_KEY
from .strategy import Obj, Strategy
from .tlspair import key_pair_problem


class ConfigMapStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        configdata.prepare_config_map(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_config_map(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_config_map_update(new, old)


class SecretStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        configdata.prepare_secret(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_secret(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_secret_update(new, old)

    def warnings(self, obj: Obj) -> list[str]:
        """A ``kubernetes.io/tls`` Secret whose tls.crt and tls.key are no key pair."""
        if obj.get("type") != TLS:
            return []
        data = obj.get("data") or {}
        problem = key_pair_problem(configdata.decode(data.get(TLS_CERT_KEY) or ""),
                                   configdata.decode(data.get(TLS_PRIVATE_KEY) or ""))
        return [problem] if problem else []

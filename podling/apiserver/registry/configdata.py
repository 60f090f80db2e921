"""ConfigMaps and Secrets: payload preparation and validation.

Both are plain objects without status or graceful deletion. A Secret's ``stringData`` is
merged into ``data`` and dropped before validation, on create and on every update (PUT or
patch), and its ``type`` defaults to Opaque, exactly where Kubernetes' conversion and
defaulting do it; ``[]byte`` values are stored as canonical base64
(:mod:`podling.api.configdata`).
"""

from __future__ import annotations

from ...api import configdata, validation
from ...api.errors import Cause
from .strategy import Obj, Strategy


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

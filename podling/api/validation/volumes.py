"""Pod volumes (``ValidateVolumes`` / ``validateVolumeSource``).

Sources podling can run (emptyDir, hostPath, configMap, secret, downwardAPI, projected,
persistentVolumeClaim, image) are checked field by field; the others are only counted, so the
"exactly one source" rule still holds for them.

``ephemeral`` (a generic ephemeral volume) is refused at creation with Forbidden at
``spec.volumes[i].ephemeral``: its PersistentVolumeClaim would need a StorageClass and a
provisioner, which podling does not have, so a pod with one could never start. Kubernetes
accepts it (and the pod waits for its claim); podling says so at once instead (see
docs/kubernetes-fidelity.md).
"""

from __future__ import annotations

from typing import Any

from podling.api import quantity
from podling.api.errors import Cause, duplicate, forbidden, invalid, not_supported, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import (as_dict, as_str, child, dicts, each_msg, index,
                                          is_int)
from podling.api.validation.container import (PULL_POLICIES, validate_local_descending_path,
                                              validate_path_no_backsteps)

#: ``validateVolumeSource`` order; the path used in "more than 1" errors where it differs.
SOURCE_ORDER = (
    "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret",
    "nfs", "iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs",
    "quobyte", "downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume",
    "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "projected", "scaleIO",
    "csi", "ephemeral", "image",
)
_MULTI_PATH = {"downwardAPI": "downwarAPI", "cephfs": "cephFS"}
HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                   "FileOrCreate", "Socket"]
FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"
EPHEMERAL_MSG = ("generic ephemeral volumes are not supported by podling: they need "
                 "PersistentVolumeClaims and a StorageClass, which podling does not have")


def validate_volumes(volumes: Any, path: str) -> tuple[dict[str, dict[str, Any]], list[Cause]]:
    """Return ``(valid volumes by name, causes)``; only error-free volumes are mountable."""
    valid: dict[str, dict[str, Any]] = {}
    errs: list[Cause] = []
    names: set[str] = set()
    for i, volume in enumerate(dicts(volumes)):
        vol_path = index(path, i)
        name = as_str(volume.get("name"))
        own = validate_volume_source(volume, vol_path)
        if not name:
            own.append(required(child(vol_path, "name")))
        else:
            own += each_msg(child(vol_path, "name"), name, fmt.is_dns1123_label(name))
        if name in names:
            own.append(duplicate(child(vol_path, "name"), name))
        if own:
            errs += own
        else:
            names.add(name)
            valid[name] = volume
    return valid, errs


def validate_volume_source(volume: dict[str, Any], path: str) -> list[Cause]:
    """Exactly one source; the first one found is validated, later ones are Forbidden."""
    errs: list[Cause] = []
    count = 0
    for kind in SOURCE_ORDER:
        if volume.get(kind) is None:
            continue
        if count:
            errs.append(forbidden(child(path, _MULTI_PATH.get(kind, kind)),
                                  "may not specify more than 1 volume type"))
            continue
        count += 1
        check = _CHECKS.get(kind)
        if check:
            errs += check(as_dict(volume[kind]), child(path, kind))
    if not count:
        errs.append(required(path, "must specify a volume type"))
    return errs


def _empty_dir(source: dict[str, Any], path: str) -> list[Cause]:
    limit = source.get("sizeLimit")
    if limit is None:
        return []
    try:
        value = quantity.parse_quantity(limit)
    except quantity.QuantityError as exc:
        return [invalid(child(path, "sizeLimit"), limit, str(exc))]
    if value < 0:
        return [forbidden(child(path, "sizeLimit"),
                          "SizeLimit field must be a valid resource quantity")]
    return []


def _host_path(source: dict[str, Any], path: str) -> list[Cause]:
    host_path = as_str(source.get("path"))
    if not host_path:
        return [required(child(path, "path"))]
    errs = validate_path_no_backsteps(host_path, child(path, "path"))
    kind = source.get("type")
    if kind is not None and kind not in HOST_PATH_TYPES:
        errs.append(not_supported(child(path, "type"), kind, HOST_PATH_TYPES))
    return errs


def _mode(source: dict[str, Any], field: str, path: str) -> list[Cause]:
    mode = source.get(field)
    if is_int(mode) and not 0 <= mode <= 0o777:
        return [invalid(child(path, field), mode, FILE_MODE_MSG)]
    return []


def validate_local_non_reserved_path(target: str, path: str) -> list[Cause]:
    errs = validate_local_descending_path(target, path)
    if target.startswith("..") and not target.startswith("../"):
        errs.append(invalid(path, target, "must not start with '..'"))
    return errs


def _key_to_paths(items: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, item in enumerate(dicts(items)):
        item_path = index(path, i)
        if not as_str(item.get("key")):
            errs.append(required(child(item_path, "key")))
        target = as_str(item.get("path"))
        if not target:
            errs.append(required(child(item_path, "path")))
        errs += validate_local_non_reserved_path(target, child(item_path, "path"))
        errs += _mode(item, "mode", item_path)
    return errs


def _secret(source: dict[str, Any], path: str) -> list[Cause]:
    errs = [] if as_str(source.get("secretName")) else [required(child(path, "secretName"))]
    errs += _mode(source, "defaultMode", path)
    return errs + _key_to_paths(source.get("items"), child(path, "items"))


def _config_map(source: dict[str, Any], path: str) -> list[Cause]:
    errs = [] if as_str(source.get("name")) else [required(child(path, "name"))]
    errs += _mode(source, "defaultMode", path)
    return errs + _key_to_paths(source.get("items"), child(path, "items"))


def _pvc(source: dict[str, Any], path: str) -> list[Cause]:
    return [] if as_str(source.get("claimName")) else [required(child(path, "claimName"))]


def _nfs(source: dict[str, Any], path: str) -> list[Cause]:
    errs = [] if as_str(source.get("server")) else [required(child(path, "server"))]
    nfs_path = as_str(source.get("path"))
    if not nfs_path:
        errs.append(required(child(path, "path")))
    if not nfs_path.startswith("/"):
        errs.append(invalid(child(path, "path"), nfs_path, "must be an absolute path"))
    return errs


def _git_repo(source: dict[str, Any], path: str) -> list[Cause]:
    errs = [] if as_str(source.get("repository")) else [required(child(path, "repository"))]
    return errs + validate_local_descending_path(as_str(source.get("directory")),
                                                 child(path, "directory"))


def _downward_api(source: dict[str, Any], path: str) -> list[Cause]:
    errs = _mode(source, "defaultMode", path)
    for item in dicts(source.get("items")):
        errs += _downward_file(item, path)
    return errs


def _downward_file(item: dict[str, Any], path: str) -> list[Cause]:
    target = as_str(item.get("path"))
    errs = [] if target else [required(child(path, "path"))]
    errs += validate_local_non_reserved_path(target, child(path, "path"))
    if item.get("fieldRef") is None and item.get("resourceFieldRef") is None:
        errs.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    elif item.get("fieldRef") is not None and item.get("resourceFieldRef") is not None:
        errs.append(invalid(path, "resource", "fieldRef and resourceFieldRef can not be "
                                              "specified simultaneously"))
    return errs + _mode(item, "mode", path)


def _projected(source: dict[str, Any], path: str) -> list[Cause]:
    errs = _mode(source, "defaultMode", path)
    for i, src in enumerate(dicts(source.get("sources"))):
        src_path = index(child(path, "sources"), i)
        kinds = [k for k in ("secret", "configMap", "downwardAPI", "serviceAccountToken",
                             "clusterTrustBundle") if src.get(k) is not None]
        for kind in ("secret", "configMap"):
            if kind in kinds:
                proj = as_dict(src[kind])
                if not as_str(proj.get("name")):
                    errs.append(required(child(src_path, kind, "name")))
                errs += _key_to_paths(proj.get("items"), child(src_path, kind, "items"))
        if len(kinds) > 1:
            errs.append(forbidden(src_path, "may not specify more than 1 volume type per "
                                            "source"))
    return errs


def _ephemeral(source: dict[str, Any], path: str) -> list[Cause]:
    return [forbidden(path, EPHEMERAL_MSG)]


def _csi(source: dict[str, Any], path: str) -> list[Cause]:
    return [] if as_str(source.get("driver")) else [required(child(path, "driver"))]


def _image(source: dict[str, Any], path: str) -> list[Cause]:
    errs = [] if as_str(source.get("reference")) else [required(child(path, "reference"))]
    policy = source.get("pullPolicy")
    if policy and policy not in PULL_POLICIES:
        errs.append(not_supported(child(path, "pullPolicy"), policy, PULL_POLICIES))
    return errs


_CHECKS = {
    "emptyDir": _empty_dir, "hostPath": _host_path, "secret": _secret,
    "configMap": _config_map, "persistentVolumeClaim": _pvc, "nfs": _nfs,
    "gitRepo": _git_repo, "downwardAPI": _downward_api, "projected": _projected, "csi": _csi,
    "image": _image, "ephemeral": _ephemeral,
}

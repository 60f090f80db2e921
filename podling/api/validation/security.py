"""Security contexts of pods and containers (``ValidateSecurityContext`` and friends)."""

from __future__ import annotations

import re
from typing import Any

from podling.api.errors import Cause, duplicate, forbidden, invalid, not_supported, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import as_dict, as_str, child, dicts, index, is_int

MAX_ID = 0xFFFFFFFF
SECCOMP_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]
APPARMOR_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]
PROC_MOUNT_TYPES = ["Default", "Unmasked"]
FS_GROUP_CHANGE_POLICIES = ["Always", "OnRootMismatch"]
SUPPLEMENTAL_GROUPS_POLICIES = ["Merge", "Strict"]
SELINUX_CHANGE_POLICIES = ["MountOption", "Recursive"]
_SYSCTL_SEGMENT = "[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SYSCTL_FMT = f"({_SYSCTL_SEGMENT}[\\./])*{_SYSCTL_SEGMENT}"
_SYSCTL_RE = re.compile(f"^{_SYSCTL_FMT}$")
_NET_SYSCTL_PREFIXES = ("net.",)
_IPC_SYSCTLS = ("kernel.shmmax", "kernel.shmall", "kernel.shmmni", "kernel.shm_rmid_forced",
                "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem")


def _id_range(value: Any, path: str) -> list[Cause]:
    """``IsValidUserID`` / ``IsValidGroupID``: 0..4294967295."""
    if is_int(value) and not 0 <= value <= MAX_ID:
        return [invalid(path, value, fmt.inclusive_range_error(0, MAX_ID))]
    return []


def validate_seccomp_profile(profile: Any, path: str) -> list[Cause]:
    if profile is None:
        return []
    profile = as_dict(profile)
    kind = as_str(profile.get("type"))
    errs: list[Cause] = []
    if not kind:
        errs.append(required(child(path, "type"), "type is required when seccompProfile is set"))
    elif kind not in SECCOMP_TYPES:
        errs.append(not_supported(child(path, "type"), kind, SECCOMP_TYPES))
    localhost = profile.get("localhostProfile")
    if kind == "Localhost":
        if localhost is None:
            errs.append(required(child(path, "localhostProfile"),
                                 "must be set when seccomp type is Localhost"))
        else:
            errs += _local_descending(as_str(localhost), child(path, "localhostProfile"))
    elif localhost is not None:
        errs.append(invalid(child(path, "localhostProfile"), as_str(localhost),
                            "can only be set when seccomp type is Localhost"))
    return errs


def _local_descending(target: str, path: str) -> list[Cause]:
    errs = [invalid(path, target, "must be a relative path")] if target.startswith("/") else []
    if ".." in target.split("/"):
        errs.append(invalid(path, target, "must not contain '..'"))
    return errs


def validate_apparmor_profile(profile: Any, path: str) -> list[Cause]:
    if profile is None:
        return []
    profile = as_dict(profile)
    kind = as_str(profile.get("type"))
    localhost = profile.get("localhostProfile")
    if kind == "Localhost":
        text = as_str(localhost)
        if localhost is None or not text.strip():
            if localhost is not None and text != text.strip():
                return [invalid(child(path, "localhostProfile"), text,
                                "must not be padded with whitespace")]
            return [required(child(path, "localhostProfile"),
                             "must be set when AppArmor type is Localhost")]
        if text != text.strip():
            return [invalid(child(path, "localhostProfile"), text,
                            "must not be padded with whitespace")]
        return []
    if kind in ("RuntimeDefault", "Unconfined"):
        if localhost is not None:
            return [invalid(child(path, "localhostProfile"), as_str(localhost),
                            "can only be set when AppArmor type is Localhost")]
        return []
    if not kind:
        return [required(child(path, "type"), "type is required when appArmorProfile is set")]
    return [not_supported(child(path, "type"), kind, APPARMOR_TYPES)]


def validate_container_security_context(sc: Any, path: str, *,
                                        host_users: bool = True) -> list[Cause]:
    """Container securityContext; privileged containers are allowed (single-node cluster)."""
    if sc is None:
        return []
    sc = as_dict(sc)
    errs = _id_range(sc.get("runAsUser"), child(path, "runAsUser"))
    errs += _id_range(sc.get("runAsGroup"), child(path, "runAsGroup"))
    proc_mount = sc.get("procMount")
    if proc_mount is not None:
        if proc_mount not in PROC_MOUNT_TYPES:
            errs.append(not_supported(child(path, "procMount"), proc_mount, PROC_MOUNT_TYPES))
        if host_users and proc_mount == "Unmasked":
            errs.append(invalid(child(path, "procMount"), proc_mount,
                                "`hostUsers` must be false to use `Unmasked`"))
    errs += validate_seccomp_profile(sc.get("seccompProfile"), child(path, "seccompProfile"))
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged") is True:
            errs.append(invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and "
                                          "`privileged` to true"))
        if "CAP_SYS_ADMIN" in (as_dict(sc.get("capabilities")).get("add") or []):
            errs.append(invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and "
                                          "`capabilities.Add` CAP_SYS_ADMIN"))
    errs += validate_apparmor_profile(sc.get("appArmorProfile"), child(path, "appArmorProfile"))
    return errs


def validate_pod_security_context(spec: dict[str, Any], path: str) -> list[Cause]:
    """``validatePodSpecSecurityContext``; host namespaces live in ``spec`` in v1."""
    sc = spec.get("securityContext")
    if sc is None:
        return []
    sc = as_dict(sc)
    errs = _id_range(sc.get("fsGroup"), child(path, "fsGroup"))
    errs += _id_range(sc.get("runAsUser"), child(path, "runAsUser"))
    errs += _id_range(sc.get("runAsGroup"), child(path, "runAsGroup"))
    for i, gid in enumerate(sc.get("supplementalGroups") or []):
        errs += _id_range(gid, index(child(path, "supplementalGroups"), i))
    share = spec.get("shareProcessNamespace")
    if share is True and spec.get("hostPID") is True:
        errs.append(invalid(child(path, "shareProcessNamespace"), True,
                            "ShareProcessNamespace and HostPID cannot both be enabled"))
    if sc.get("sysctls"):
        errs += _validate_sysctls(sc.get("sysctls"), spec, child(path, "sysctls"))
    errs += _enum_if_set(sc.get("fsGroupChangePolicy"), FS_GROUP_CHANGE_POLICIES,
                         child(path, "fsGroupChangePolicy"))
    errs += validate_seccomp_profile(sc.get("seccompProfile"), child(path, "seccompProfile"))
    errs += validate_apparmor_profile(sc.get("appArmorProfile"), child(path, "appArmorProfile"))
    errs += _enum_if_set(sc.get("supplementalGroupsPolicy"), SUPPLEMENTAL_GROUPS_POLICIES,
                         child(path, "supplementalGroupsPolicy"))
    errs += _enum_if_set(sc.get("seLinuxChangePolicy"), SELINUX_CHANGE_POLICIES,
                         child(path, "seLinuxChangePolicy"))
    return errs


def _enum_if_set(value: Any, allowed: list[str], path: str) -> list[Cause]:
    if value is None or value in allowed:
        return []
    return [not_supported(path, value, allowed)]


def _validate_sysctls(sysctls: Any, spec: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    names: set[str] = set()
    for i, sysctl in enumerate(dicts(sysctls)):
        name = as_str(sysctl.get("name"))
        name_path = child(index(path, i), "name")
        if not name:
            errs.append(required(name_path))
        elif len(name) > 253 or not _SYSCTL_RE.match(name.replace("/", ".")):
            errs.append(invalid(name_path, name, "must have at most 253 characters and match "
                                                 f"regex ^{_SYSCTL_FMT}$"))
        elif name in names:
            errs.append(duplicate(name_path, name))
        errs += _host_sysctl(name, spec, name_path)
        names.add(name)
    return errs


def _host_sysctl(name: str, spec: dict[str, Any], path: str) -> list[Cause]:
    normalized = name.replace("/", ".")
    if spec.get("hostNetwork") is True and normalized.startswith(_NET_SYSCTL_PREFIXES):
        return [invalid(path, name, "may not be specified when 'hostNetwork' is true")]
    is_ipc = normalized in _IPC_SYSCTLS or normalized.startswith("fs.mqueue.")
    if spec.get("hostIPC") is True and is_ipc:
        return [invalid(path, name, "may not be specified when 'hostIPC' is true")]
    return []


def validate_host_users(spec: dict[str, Any], path: str) -> list[Cause]:
    """``hostUsers: false`` excludes the host network, PID and IPC namespaces."""
    if as_dict(spec.get("securityContext")).get("hostUsers") is not False:
        return []
    errs: list[Cause] = []
    for field, name in (("hostNetwork", "hostNetwork"), ("hostPID", "HostPID"),
                        ("hostIPC", "HostIPC")):
        if spec.get(field) is True:
            errs.append(forbidden(child(path, name), "when `pod.Spec.HostUsers` is false"))
    return errs

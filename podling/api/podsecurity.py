"""Pod Security Standards as Pod Security Admission evaluates them (Kubernetes 1.32): the
namespace labels, the baseline and restricted checks, and the text of their verdicts.

Pure functions over API objects (JSON dicts). A namespace's policy comes from its labels
``pod-security.kubernetes.io/{enforce,audit,warn}[-version]``: levels ``privileged``,
``baseline``, ``restricted``; versions ``latest`` or ``v1.N`` (every version evaluates as
1.32, the newest policy; the text shows the label's value). :func:`evaluate` returns the
failed checks in Kubernetes' order; :func:`forbidden_detail` renders them as
``reason (detail), reason (detail)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

Obj = dict[str, Any]

PREFIX = "pod-security.kubernetes.io/"
LEVELS = ("privileged", "baseline", "restricted")
MODES = ("enforce", "audit", "warn")
_VERSION = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")
LEVEL_ERROR = "must be one of privileged, baseline, restricted"
VERSION_ERROR = 'must be "latest" or "v1.x"'


@dataclass(frozen=True)
class LevelVersion:
    level: str = "privileged"
    version: str = "latest"

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def stricter_than(self, other: "LevelVersion") -> bool:
        return LEVELS.index(self.level) > LEVELS.index(other.level)


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion = LevelVersion()
    audit: LevelVersion = LevelVersion()
    warn: LevelVersion = LevelVersion()


def label_errors(labels: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, message) for each PSA label with a bad value, in Kubernetes' order."""
    errors = []
    for mode in MODES:
        level, version = labels.get(PREFIX + mode), labels.get(f"{PREFIX}{mode}-version")
        if level is not None and level not in LEVELS:
            errors.append((PREFIX + mode, str(level), LEVEL_ERROR))
        if version is not None and not _valid_version(version):
            errors.append((f"{PREFIX}{mode}-version", str(version), VERSION_ERROR))
    return errors


def _valid_version(version: Any) -> bool:
    return version == "latest" or (isinstance(version, str) and bool(_VERSION.match(version)))


def policy(labels: dict[str, Any]) -> Policy:
    """The namespace's policy; a bad label falls back as Kubernetes does: enforce to
    restricted, audit and warn to privileged, a version to latest. Without a warn label,
    warn follows a stricter enforce."""
    found = {}
    for mode in MODES:
        level = labels.get(PREFIX + mode)
        version = labels.get(f"{PREFIX}{mode}-version")
        if level is None:
            level = "privileged"
        elif level not in LEVELS:
            level = "restricted" if mode == "enforce" else "privileged"
        found[mode] = LevelVersion(level, str(version) if _valid_version(version) else "latest")
    warn = found["warn"]
    enforce_label = labels.get(PREFIX + "enforce")
    if PREFIX + "warn" not in labels and enforce_label in LEVELS and \
            found["enforce"].stricter_than(warn):
        version = labels.get(PREFIX + "warn-version")
        warn = LevelVersion(found["enforce"].level, str(version) if _valid_version(version)
                            else found["enforce"].version)
    return Policy(found["enforce"], found["audit"], warn)


# -- rendering ----------------------------------------------------------------------------

def _quote(items: Iterable[str]) -> str:
    items = list(items)
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers(names: list[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_quote(names)}"


def _setters(pod_bad: bool, names: list[str]) -> str:
    return " and ".join((["pod"] if pod_bad else []) + ([_containers(names)] if names else []))


def forbidden_detail(results: list[tuple[str, str]]) -> str:
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in results)


def forbidden_reasons(results: list[tuple[str, str]]) -> str:
    return ", ".join(reason for reason, _ in results)


# -- the pod's parts ------------------------------------------------------------------------

def _obj(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _all_containers(spec: Obj) -> list[Obj]:
    """Init, regular, then ephemeral containers (Kubernetes' visit order)."""
    return [_obj(c) for key in ("initContainers", "containers", "ephemeralContainers")
            for c in _list(spec.get(key))]


def _sc(container: Obj) -> Obj:
    return _obj(container.get("securityContext"))


def _windows(spec: Obj) -> bool:
    return _obj(spec.get("os")).get("name") == "windows"


# -- the checks (each: the pod's spec and metadata -> (reason, detail) or None) -------------

Result = tuple[str, str] | None
_BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                  "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
_GOOD_PROFILES = ("RuntimeDefault", "Localhost")
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t",
                  "container_engine_t")
#: the kubelet's safe sysctls (1.32), which Pod Security's baseline allows
SAFE_SYSCTLS = ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                 "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
                 "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports",
                 "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                 "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
                 "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")
_RESTRICTED_OK = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                  "persistentVolumeClaim", "projected", "secret")
_VOLUME_TYPES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs",
                 "iscsi", "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc",
                 "azureFile", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
                 "portworxVolume", "scaleIO", "storageos")


def _profile_check(spec: Obj, field: str, good: tuple[str, ...]) -> tuple[bool, list[str], set]:
    """Whether the pod's ``field`` profile is bad, the containers whose own one is bad, and
    the bad types."""
    bad_types: set[str] = set()
    pod_profile = _obj(spec.get("securityContext")).get(field)
    pod_bad = isinstance(pod_profile, dict) and pod_profile.get("type") not in good
    if pod_bad:
        bad_types.add(str(_obj(pod_profile).get("type", "")))
    names = []
    for c in _all_containers(spec):
        profile = _sc(c).get(field)
        if isinstance(profile, dict) and profile.get("type") not in good:
            names.append(str(c.get("name", "")))
            bad_types.add(str(profile.get("type", "")))
    return pod_bad, names, bad_types


def app_armor(spec: Obj, meta: Obj) -> Result:
    pod_bad, names, types = _profile_check(spec, "appArmorProfile", _GOOD_PROFILES)
    annotations = sorted(f'{key}="{value}"' for key, value in
                         _obj(meta.get("annotations")).items()
                         if key.startswith(_APPARMOR_ANNOTATION) and value != "" and
                         value != "runtime/default" and not str(value).startswith("localhost/"))
    values = sorted(types) + annotations
    if not values:
        return None
    setters = _setters(pod_bad, names)
    if annotations:
        word = _plural("annotation", "annotations", len(annotations))
        setters = f"{setters} and {word}" if setters else word
    return (_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
            f"{setters} must not set AppArmor profile type to {_quote(values)}")


def _added(c: Obj) -> list[str]:
    return [str(a) for a in _list(_obj(_sc(c).get("capabilities")).get("add"))]


def _offenders(spec: Obj, values_of: Callable[[Obj], list[str]]) -> tuple[list[str], set[str]]:
    """The containers (in visit order) for which ``values_of`` finds anything, and all it
    found."""
    names, values = [], set()
    for c in _all_containers(spec):
        found = values_of(c)
        if found:
            names.append(str(c.get("name", "")))
            values.update(found)
    return names, values


def capabilities_baseline(spec: Obj, meta: Obj) -> Result:
    names, caps = _offenders(spec, lambda c: [a for a in _added(c) if a not in _BASELINE_CAPS])
    if not names:
        return None
    return ("non-default capabilities", f"{_containers(names)} must not include "
            f"{_quote(sorted(caps))} in securityContext.capabilities.add")


def host_namespaces(spec: Obj, meta: Obj) -> Result:
    shared = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC")
              if spec.get(field) is True]
    return ("host namespaces", ", ".join(shared)) if shared else None


def host_path_volumes(spec: Obj, meta: Obj) -> Result:
    names = [str(v.get("name", "")) for v in map(_obj, _list(spec.get("volumes")))
             if v.get("hostPath") is not None]
    if not names:
        return None
    return ("hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_quote(names)}")


def host_ports(spec: Obj, meta: Obj) -> Result:
    names, ports = _offenders(spec, lambda c: [
        str(p.get("hostPort")) for p in map(_obj, _list(c.get("ports")))
        if p.get("hostPort") not in (None, 0)])
    if not names:
        return None
    return ("hostPort", f"{_containers(names)} {_plural('uses', 'use', len(names))} "
            f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")


def privileged(spec: Obj, meta: Obj) -> Result:
    names = [str(c.get("name", "")) for c in _all_containers(spec)
             if _sc(c).get("privileged") is True]
    if not names:
        return None
    return ("privileged", f"{_containers(names)} must not set securityContext.privileged=true")


def proc_mount(spec: Obj, meta: Obj) -> Result:
    names, values = _offenders(spec, lambda c: [
        str(m) for m in [_sc(c).get("procMount")] if m is not None and m != "Default"])
    if not names:
        return None
    return ("procMount", f"{_containers(names)} must not set securityContext.procMount to "
            f"{_quote(sorted(values))}")


def _selinux_problems(options: Any, types: set[str]) -> set[str]:
    """Which of "type", "user", "role" make seLinuxOptions forbidden; bad types go into
    ``types``."""
    options = _obj(options)
    found = set()
    if options.get("type", "") not in _SELINUX_TYPES:
        found.add("type")
        types.add(str(options.get("type")))
    found.update(field for field in ("user", "role") if options.get(field))
    return found


def selinux(spec: Obj, meta: Obj) -> Result:
    types: set[str] = set()
    pod_options = _obj(spec.get("securityContext")).get("seLinuxOptions")
    found = _selinux_problems(pod_options, types) if pod_options is not None else set()
    pod_bad = bool(found)
    names = []
    for c in _all_containers(spec):
        options = _sc(c).get("seLinuxOptions")
        if options is not None and (problems := _selinux_problems(options, types)):
            names.append(str(c.get("name", "")))
            found |= problems
    if not found:
        return None
    data = ([f"{_plural('type', 'types', len(types))} {_quote(sorted(types))}"]
            if "type" in found else []) + \
        [f"{field} may not be set" for field in ("user", "role") if field in found]
    return ("seLinuxOptions", f"{_setters(pod_bad, names)} set forbidden "
            f"securityContext.seLinuxOptions: {'; '.join(data)}")


def seccomp_baseline(spec: Obj, meta: Obj) -> Result:
    pod_bad, names, types = _profile_check(spec, "seccompProfile", _GOOD_PROFILES)
    if not pod_bad and not names:
        return None
    return ("seccompProfile", f"{_setters(pod_bad, names)} must not set "
            f"securityContext.seccompProfile.type to {_quote(sorted(types))}")


def sysctls(spec: Obj, meta: Obj) -> Result:
    bad = [str(s.get("name", "")) for s in map(_obj, _list(
        _obj(spec.get("securityContext")).get("sysctls"))) if s.get("name") not in SAFE_SYSCTLS]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def windows_host_process(spec: Obj, meta: Obj) -> Result:
    pod_bad = _obj(_obj(spec.get("securityContext")).get("windowsOptions")).get(
        "hostProcess") is True
    names = [str(c.get("name", "")) for c in _all_containers(spec)
             if _obj(_sc(c).get("windowsOptions")).get("hostProcess") is True]
    if not pod_bad and not names:
        return None
    return ("hostProcess", f"{_setters(pod_bad, names)} must not set "
            "securityContext.windowsOptions.hostProcess=true")


def allow_privilege_escalation(spec: Obj, meta: Obj) -> Result:
    if _windows(spec):
        return None
    names = [str(c.get("name", "")) for c in _all_containers(spec)
             if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not names:
        return None
    return ("allowPrivilegeEscalation != false",
            f"{_containers(names)} must set securityContext.allowPrivilegeEscalation=false")


def capabilities_restricted(spec: Obj, meta: Obj) -> Result:
    if _windows(spec):
        return None
    missing_drop, adding, caps = [], [], set()
    for c in _all_containers(spec):
        capabilities = _sc(c).get("capabilities")
        name = str(c.get("name", ""))
        if not isinstance(capabilities, dict):
            missing_drop.append(name)
            continue
        if "ALL" not in _list(capabilities.get("drop")):
            missing_drop.append(name)
        bad = [a for a in _added(c) if a != "NET_BIND_SERVICE"]
        if bad:
            adding.append(name)
            caps.update(bad)
    parts = ([f'{_containers(missing_drop)} must set securityContext.capabilities.drop=["ALL"]']
             if missing_drop else []) + \
        ([f"{_containers(adding)} must not include {_quote(sorted(caps))} in "
          "securityContext.capabilities.add"] if adding else [])
    return ("unrestricted capabilities", "; ".join(parts)) if parts else None


def restricted_volumes(spec: Obj, meta: Obj) -> Result:
    names, types = [], set()
    for v in map(_obj, _list(spec.get("volumes"))):
        if any(v.get(kind) is not None for kind in _RESTRICTED_OK):
            continue
        names.append(str(v.get("name", "")))
        types.add(next((t for t in _VOLUME_TYPES if v.get(t) is not None), "unknown"))
    if not names:
        return None
    return ("restricted volume types",
            f"{_plural('volume', 'volumes', len(names))} {_quote(names)} "
            f"{_plural('uses', 'use', len(names))} "
            f"{_plural('restricted volume type', 'restricted volume types', len(types))} "
            f"{_quote(sorted(types))}")


def run_as_non_root(spec: Obj, meta: Obj) -> Result:
    pod_value = _obj(spec.get("securityContext")).get("runAsNonRoot")
    explicit, implicit = [], []
    for c in _all_containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is False:
            explicit.append(str(c.get("name", "")))
        elif value is None and pod_value is not True:
            implicit.append(str(c.get("name", "")))
    if pod_value is False or explicit:
        return ("runAsNonRoot != true", f"{_setters(pod_value is False, explicit)} must not "
                "set securityContext.runAsNonRoot=false")
    if implicit:
        return ("runAsNonRoot != true", f"pod or {_containers(implicit)} must set "
                "securityContext.runAsNonRoot=true")
    return None


def run_as_user(spec: Obj, meta: Obj) -> Result:
    pod_bad = _obj(spec.get("securityContext")).get("runAsUser") == 0
    names = [str(c.get("name", "")) for c in _all_containers(spec)
             if _sc(c).get("runAsUser") == 0]
    if not pod_bad and not names:
        return None
    return ("runAsUser=0", f"{_setters(pod_bad, names)} must not set runAsUser=0")


def seccomp_restricted(spec: Obj, meta: Obj) -> Result:
    if _windows(spec):
        return None
    pod_bad, names, types = _profile_check(spec, "seccompProfile", _GOOD_PROFILES)
    if pod_bad or names:
        return ("seccompProfile", f"{_setters(pod_bad, names)} must not set "
                f"securityContext.seccompProfile.type to {_quote(sorted(types))}")
    pod_set = isinstance(_obj(spec.get("securityContext")).get("seccompProfile"), dict)
    unset = [str(c.get("name", "")) for c in _all_containers(spec)
             if not isinstance(_sc(c).get("seccompProfile"), dict) and not pod_set]
    if not unset:
        return None
    return ("seccompProfile", f"pod or {_containers(unset)} must set "
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')


BASELINE = (app_armor, capabilities_baseline, host_namespaces, host_path_volumes, host_ports,
            privileged, proc_mount, selinux, seccomp_baseline, sysctls, windows_host_process)
RESTRICTED = (app_armor, host_namespaces, host_ports, privileged, proc_mount, selinux, sysctls,
              windows_host_process, allow_privilege_escalation, capabilities_restricted,
              restricted_volumes, run_as_non_root, run_as_user, seccomp_restricted)


def evaluate(pod: Obj, level: str) -> list[tuple[str, str]]:
    """The checks ``pod`` fails at ``level``, in Kubernetes' order (none for privileged)."""
    checks = {"baseline": BASELINE, "restricted": RESTRICTED}.get(level, ())
    spec, meta = _obj(pod.get("spec")), _obj(pod.get("metadata"))
    return [result for check in checks if (result := check(spec, meta)) is not None]

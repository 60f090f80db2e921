"""Kubernetes v1 defaulting (``pkg/apis/core/v1/defaults.go``, 1.32) for the kinds podling serves.

Every ``default_*`` function mutates the JSON dict it is given, in place, is idempotent, and
only fills fields that are absent (or empty, where Kubernetes treats empty as unset). A GET
after create must show exactly what a real API server would, so the defaulted values are the
ones Kubernetes stores: ``imagePullPolicy`` by image tag, probe thresholds, ``resources: {}``
on every container, canonical resource quantities and so on.

Create-time preparation that is not defaulting in Kubernetes (pod status, namespace
finalizers, the Priority and DefaultTolerationSeconds admission plugins) has separate,
clearly named functions so callers choose when to apply them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from podling.api import quantity

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_GRACE_SECONDS = 30
DEFAULT_FILE_MODE = 0o644  # secret, configMap, downwardAPI, projected volumes

#: Every field of ``VolumeSource``; a volume with none of them becomes ``emptyDir: {}``.
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image",
)

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# distribution/reference grammar, enough to find the tag and the digest of an image.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")


def parse_image_tag(image: str) -> tuple[str, str] | None:
    """Return ``(tag, digest)`` of an image reference, ``None`` when it does not parse.

    No tag and no digest means tag ``latest`` (kubelet ``parsers.ParseImageName``).
    """
    match = _REFERENCE.match(image or "")
    if not match or len(match.group(1)) > 255:
        return None
    tag, digest = match.group(2) or "", match.group(3) or ""
    if not tag and not digest:
        tag = "latest"
    return tag, digest


def image_pull_policy_for(image: str) -> str:
    """IMG-01: tag ``latest`` (explicit or implied) -> ``Always``; otherwise ``IfNotPresent``."""
    parsed = parse_image_tag(image)
    return "Always" if parsed and parsed[0] == "latest" else "IfNotPresent"


# --- pods ------------------------------------------------------------------------------


def default_pod(pod: dict[str, Any]) -> None:
    """Apply ``SetDefaults_Pod`` / ``SetDefaults_PodSpec`` and all nested defaults in place."""
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    _default_pod_spec(spec)
    for key in ("initContainers", "containers"):
        for container in _dicts(spec.get(key)):
            _requests_from_limits(container)
    spec.setdefault("enableServiceLinks", True)
    if spec.get("hostNetwork") is True:
        for key in ("initContainers", "containers"):
            for container in _dicts(spec.get(key)):
                _host_network_ports(container)
    for key in CONTAINER_LISTS:
        for container in _dicts(spec.get(key)):
            _canonical_resources(container)


def _default_pod_spec(spec: dict[str, Any]) -> None:
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = DEFAULT_GRACE_SECONDS
    if not spec.get("schedulerName"):
        spec["schedulerName"] = DEFAULT_SCHEDULER
    _service_account_alias(spec)
    for key in CONTAINER_LISTS:
        for container in _dicts(spec.get(key)):
            default_container(container)
    for volume in _dicts(spec.get("volumes")):
        default_volume(volume)


def _service_account_alias(spec: dict[str, Any]) -> None:
    """v1's deprecated ``serviceAccount``: read when ``serviceAccountName`` is empty, and
    always written back as a copy of it (Kubernetes' v1 PodSpec conversion)."""
    if not spec.get("serviceAccountName") and isinstance(spec.get("serviceAccount"), str):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    else:
        spec.pop("serviceAccount", None)


def default_container(container: dict[str, Any]) -> None:
    """``SetDefaults_Container`` plus ports, probes, hooks, env field refs and resources."""
    if not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = image_pull_policy_for(container.get("image") or "")
    if not container.get("terminationMessagePath"):
        container["terminationMessagePath"] = TERMINATION_MESSAGE_PATH
    if not container.get("terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    if container.get("resources") is None:
        container["resources"] = {}
    for port in _dicts(container.get("ports")):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(container.get(key), dict):
            default_probe(container[key])
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                _default_http_get(lifecycle[hook])
    for env in _dicts(container.get("env")):
        field_ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(
            env.get("valueFrom"), dict) else None
        if isinstance(field_ref, dict) and not field_ref.get("apiVersion"):
            field_ref["apiVersion"] = "v1"


def default_probe(probe: dict[str, Any]) -> None:
    """``SetDefaults_Probe``: zero or absent thresholds take their defaults."""
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10),
                       ("successThreshold", 1), ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe)


def _default_http_get(handler: dict[str, Any]) -> None:
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        if not http_get.get("path"):
            http_get["path"] = "/"
        if not http_get.get("scheme"):
            http_get["scheme"] = "HTTP"


def default_volume(volume: dict[str, Any]) -> None:
    """No source -> ``emptyDir: {}``; hostPath type ``""``; file modes 0644; token expiry 1h."""
    if not any(volume.get(key) is not None for key in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        source = volume.get(key)
        if isinstance(source, dict) and source.get("defaultMode") is None:
            source["defaultMode"] = DEFAULT_FILE_MODE
    projected = volume.get("projected")
    if isinstance(projected, dict):
        for source in _dicts(projected.get("sources")):
            token = source.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = 3600
    empty_dir = volume.get("emptyDir")
    if isinstance(empty_dir, dict) and empty_dir.get("sizeLimit") is not None:
        empty_dir["sizeLimit"] = _canonical(empty_dir["sizeLimit"], round_milli=False)


def _requests_from_limits(container: dict[str, Any]) -> None:
    resources = container.get("resources")
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict):
        return
    requests = resources.get("requests")
    if not isinstance(requests, dict):
        requests = resources["requests"] = {}
    for name, value in resources["limits"].items():
        requests.setdefault(name, value)


def _host_network_ports(container: dict[str, Any]) -> None:
    for port in _dicts(container.get("ports")):
        if not port.get("hostPort"):
            port["hostPort"] = port.get("containerPort", 0)


def _canonical_resources(container: dict[str, Any]) -> None:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        return
    for key in ("limits", "requests"):
        values = resources.get(key)
        if isinstance(values, dict):
            for name in list(values):
                values[name] = _canonical(values[name], round_milli=True)


def _canonical(value: Any, *, round_milli: bool) -> Any:
    """Canonical quantity string, or the value unchanged when it does not parse."""
    try:
        number, fmt = quantity.parse_quantity_with_format(value)
    except quantity.QuantityError:
        return value
    if round_milli:
        number = quantity.round_up_milli(number)
    return quantity.format_quantity(number, fmt)


def init_pod_status(pod: dict[str, Any]) -> None:
    """Pod strategy ``PrepareForCreate``: status becomes ``{phase: Pending, qosClass}``."""
    pod["status"] = {"phase": "Pending", "qosClass": compute_qos_class(pod)}


# --- QoS -------------------------------------------------------------------------------

_QOS_RESOURCES = ("cpu", "memory")


def compute_qos_class(pod: dict[str, Any]) -> str:
    """``Guaranteed`` / ``Burstable`` / ``BestEffort`` by Kubernetes' ``ComputePodQOS``.

    Only cpu and memory count; init and regular containers count, ephemeral ones do not.
    Quantities that do not parse are ignored.
    """
    spec = pod["spec"] if isinstance(pod.get("spec"), dict) else {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for key in ("containers", "initContainers"):
        for container in _dicts(spec.get(key)):
            resources = container.get("resources") or {}
            _sum_positive(resources.get("requests"), requests)
            found = _sum_positive(resources.get("limits"), limits)
            if not set(_QOS_RESOURCES) <= found:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(name) == value for name, value in requests.items()):
        if len(requests) == len(limits):
            return "Guaranteed"
    return "Burstable"


def _sum_positive(values: Any, into: dict[str, Decimal]) -> set[str]:
    found: set[str] = set()
    if not isinstance(values, dict):
        return found
    for name, raw in values.items():
        if name not in _QOS_RESOURCES:
            continue
        try:
            amount = quantity.parse_quantity(raw)
        except quantity.QuantityError:
            continue
        if amount > 0:
            found.add(name)
            into[name] = into.get(name, Decimal(0)) + amount
    return found


# --- admission defaults ----------------------------------------------------------------

SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2000001000,
                           "system-cluster-critical": 2000000000}
DEFAULT_TOLERATION_SECONDS = 300
_DEFAULT_TOLERATION_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def admit_pod_defaults(pod: dict[str, Any]) -> str | None:
    """What the Priority and DefaultTolerationSeconds admission plugins add on create.

    Sets ``spec.priority`` (0, or the system class value), ``spec.preemptionPolicy``
    (``PreemptLowerPriority``) and the two 300 s NoExecute tolerations. Returns the
    Forbidden message for an unknown ``priorityClassName`` (nothing is changed then).
    """
    spec = pod.setdefault("spec", {})
    class_name = spec.get("priorityClassName") or ""
    if class_name and class_name not in SYSTEM_PRIORITY_CLASSES:
        return f"no PriorityClass with name {class_name} was found"
    spec["priority"] = SYSTEM_PRIORITY_CLASSES.get(class_name, 0)
    if not spec.get("preemptionPolicy"):
        spec["preemptionPolicy"] = "PreemptLowerPriority"
    tolerations = spec.get("tolerations") if isinstance(spec.get("tolerations"), list) else []
    added = [_default_toleration(key) for key in _DEFAULT_TOLERATION_KEYS
             if not _tolerates(tolerations, key)]
    if added:
        spec["tolerations"] = list(tolerations) + added
    return None


def _tolerates(tolerations: list[Any], key: str) -> bool:
    return any(isinstance(t, dict) and t.get("key", "") in (key, "")
               and t.get("effect", "") in ("NoExecute", "") for t in tolerations)


def _default_toleration(key: str) -> dict[str, Any]:
    return {"key": key, "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}


# --- other kinds -----------------------------------------------------------------------


def default_node(node: dict[str, Any]) -> None:
    """``SetDefaults_NodeStatus``: allocatable defaults to capacity; quantities canonical."""
    status = node.get("status")
    if not isinstance(status, dict):
        return
    for key in ("capacity", "allocatable"):
        values = status.get(key)
        if isinstance(values, dict):
            for name in list(values):
                values[name] = _canonical(values[name], round_milli=True)
    if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def default_namespace(ns: dict[str, Any]) -> None:
    """The ``kubernetes.io/metadata.name`` label and ``status.phase: Active``.

    The ``kubernetes`` spec finalizer is not a default: it is added once, on create (the
    namespace strategy), so that finalizing can remove it."""
    meta = ns.setdefault("metadata", {})
    if meta.get("name"):
        labels = meta["labels"] if isinstance(meta.get("labels"), dict) else {}
        labels["kubernetes.io/metadata.name"] = meta["name"]
        meta["labels"] = labels
    status = ns["status"] if isinstance(ns.get("status"), dict) else {}
    if not status.get("phase"):
        status["phase"] = "Active"
    ns["status"] = status


def default_event(ev: dict[str, Any]) -> None:
    """v1 Events have no defaults, but these always-serialized fields appear on GET."""
    ev.setdefault("involvedObject", {})
    ev.setdefault("source", {})
    ev.setdefault("reportingComponent", "")
    ev.setdefault("reportingInstance", "")
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        ev.setdefault(key, None)


def default_lease(lease: dict[str, Any]) -> None:
    """coordination.k8s.io/v1 Leases have no defaults; ``spec`` is always present."""
    if not isinstance(lease.get("spec"), dict):
        lease["spec"] = {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []

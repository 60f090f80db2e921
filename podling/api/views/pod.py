"""Views of a Pod: its spec (volumes, host aliases, DNS, security context, scheduling
constraints, containers) and the parts of its status that podling reads back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..pods import TERMINAL_PHASES
from ..types import ObjMap
from . import _read
from .container import ContainerView, SeccompProfileView
from .meta import ConditionView, ObjectMetaView, conditions
from .scheduling import NodeAffinityView, TolerationView
from .volume import DownwardAPIView, ObjectProjectionView, ProjectedView

DEFAULT_SCHEDULER = "default-scheduler"


@dataclass(frozen=True)
class HostPathView:
    """``volumes[].hostPath``: ``type`` "" when unset (no check)."""

    path: str = ""
    type: str = ""


@dataclass(frozen=True)
class EmptyDirView:
    """``volumes[].emptyDir``: ``medium`` "" (disk) when unset; ``size_limit`` as written,
    None when unset or ""."""

    medium: str = ""
    size_limit: Any = None


@dataclass(frozen=True)
class VolumeView:
    """``spec.volumes[]``. ``sources`` are the keys other than ``name`` with a non-null
    value, in the order written; ``host_path`` / ``empty_dir`` / ``config_map`` / ``secret``
    / ``downward_api`` / ``projected`` are None unless that source is among them (a volume
    with no source at all is the API's emptyDir default)."""

    name: str = ""
    sources: tuple[str, ...] = ()
    host_path: HostPathView | None = None
    empty_dir: EmptyDirView | None = None
    config_map: ObjectProjectionView | None = None
    secret: ObjectProjectionView | None = None
    downward_api: DownwardAPIView | None = None
    projected: ProjectedView | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> "VolumeView":
        v = _read.obj(obj)
        if not v:
            return _read.default(cls)
        sources = tuple(str(k) for k in v if k != "name" and v[k] is not None)
        hp, ed = _read.obj(v.get("hostPath")), _read.obj(v.get("emptyDir"))
        size = ed.get("sizeLimit")
        return cls(
            name=_read.text(v.get("name")), sources=sources,
            host_path=HostPathView(_read.text(hp.get("path")), _read.text(hp.get("type")))
            if "hostPath" in sources else None,
            empty_dir=EmptyDirView(_read.text(ed.get("medium")),
                                   None if size in (None, "") else size)
            if "emptyDir" in sources else None,
            config_map=ObjectProjectionView.from_obj(v["configMap"])
            if "configMap" in sources else None,
            secret=ObjectProjectionView.from_obj(v["secret"], name_field="secretName")
            if "secret" in sources else None,
            downward_api=DownwardAPIView.from_obj(v["downwardAPI"])
            if "downwardAPI" in sources else None,
            projected=ProjectedView.from_obj(v["projected"]) if "projected" in sources else None)


@dataclass(frozen=True)
class HostAliasView:
    """``spec.hostAliases[]``."""

    ip: str = ""
    hostnames: tuple[str, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "HostAliasView":
        a = _read.obj(obj)
        if not a:
            return _read.default(cls)
        return cls(ip=_read.text(a.get("ip")), hostnames=_read.texts(a.get("hostnames")))


@dataclass(frozen=True)
class DNSConfigView:
    """``spec.dnsConfig``: ``options`` as (name, value) with value "" when unset; options
    without a name are dropped."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "DNSConfigView":
        d = _read.obj(obj)
        if not d:
            return _read.default(cls)
        return cls(nameservers=_read.texts(d.get("nameservers")),
                   searches=_read.texts(d.get("searches")),
                   options=tuple((_read.text(o.get("name")), _read.text(o.get("value")))
                                 for o in _read.objs(d.get("options")) if o.get("name")))


@dataclass(frozen=True)
class PodSecurityContextView:
    """``spec.securityContext``: None where unset differs from 0 / false."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    seccomp: SeccompProfileView | None = None
    sysctls: tuple[tuple[str, str], ...] = ()  # (name, value), as written

    @classmethod
    def from_obj(cls, obj: Any) -> "PodSecurityContextView":
        sc = _read.obj(obj)
        if not sc:
            return _read.default(cls)
        groups = (_read.opt_int(g) for g in sc.get("supplementalGroups") or ())
        return cls(run_as_user=_read.opt_int(sc.get("runAsUser")),
                   run_as_group=_read.opt_int(sc.get("runAsGroup")),
                   run_as_non_root=_read.opt_bool(sc.get("runAsNonRoot")),
                   fs_group=_read.opt_int(sc.get("fsGroup")),
                   supplemental_groups=tuple(g for g in groups if g is not None),
                   seccomp=SeccompProfileView.from_obj(sc.get("seccompProfile")),
                   sysctls=tuple((_read.text(s.get("name")), _read.text(s.get("value")))
                                 for s in _read.objs(sc.get("sysctls")) if s.get("name")))


def _containers(value: Any) -> tuple[ContainerView, ...]:
    return tuple(ContainerView.from_obj(c) for c in _read.objs(value))


@dataclass(frozen=True)
class PodSpecView:
    """``spec``. Defaults: ``scheduler_name`` "default-scheduler", ``restart_policy``
    "Always", ``dns_policy`` "ClusterFirst", ``priority`` 0; other strings "", booleans
    false, lists (), maps {}. ``termination_grace_period_seconds`` is None when unset
    (readers apply Kubernetes' 30), ``active_deadline_seconds`` None when unset.
    ``overhead`` is kept as written (quantities)."""

    node_name: str = ""
    scheduler_name: str = DEFAULT_SCHEDULER
    node_selector: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[ContainerView, ...] = ()
    init_containers: tuple[ContainerView, ...] = ()
    ephemeral_containers: tuple[ContainerView, ...] = ()
    volumes: tuple[VolumeView, ...] = ()
    restart_policy: str = "Always"
    termination_grace_period_seconds: int | None = None
    active_deadline_seconds: int | None = None
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    share_process_namespace: bool = False
    host_users: bool = True  # false: the pod wants a user namespace of its own
    host_aliases: tuple[HostAliasView, ...] = ()
    hostname: str = ""
    subdomain: str = ""
    dns_policy: str = "ClusterFirst"
    dns_config: DNSConfigView = field(default_factory=DNSConfigView)
    security_context: PodSecurityContextView = field(default_factory=PodSecurityContextView)
    service_account_name: str = ""
    tolerations: tuple[TolerationView, ...] = ()
    node_affinity: NodeAffinityView = field(default_factory=NodeAffinityView)
    priority: int = 0
    overhead: Mapping[str, Any] = field(default_factory=dict)
    readiness_gates: tuple[str, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "PodSpecView":
        s = _read.obj(obj)
        if not s:
            return _read.default(cls)
        return cls(
            node_name=_read.text(s.get("nodeName")),
            scheduler_name=_read.text(s.get("schedulerName"), DEFAULT_SCHEDULER),
            node_selector=_read.str_map(s.get("nodeSelector")),
            containers=_containers(s.get("containers")),
            init_containers=_containers(s.get("initContainers")),
            ephemeral_containers=_containers(s.get("ephemeralContainers")),
            volumes=tuple(VolumeView.from_obj(v) for v in _read.objs(s.get("volumes"))),
            restart_policy=_read.text(s.get("restartPolicy"), "Always"),
            termination_grace_period_seconds=_read.opt_int(s.get("terminationGracePeriodSeconds")),
            active_deadline_seconds=_read.opt_int(s.get("activeDeadlineSeconds")),
            host_network=bool(s.get("hostNetwork")), host_pid=bool(s.get("hostPID")),
            host_ipc=bool(s.get("hostIPC")),
            share_process_namespace=bool(s.get("shareProcessNamespace")),
            host_users=s.get("hostUsers") is not False,
            host_aliases=tuple(HostAliasView.from_obj(a) for a in _read.objs(s.get("hostAliases"))),
            hostname=_read.text(s.get("hostname")), subdomain=_read.text(s.get("subdomain")),
            dns_policy=_read.text(s.get("dnsPolicy"), "ClusterFirst"),
            dns_config=DNSConfigView.from_obj(s.get("dnsConfig")),
            security_context=PodSecurityContextView.from_obj(s.get("securityContext")),
            service_account_name=_read.text(s.get("serviceAccountName")),
            tolerations=tuple(TolerationView.from_obj(t) for t in _read.objs(s.get("tolerations"))),
            node_affinity=NodeAffinityView.from_obj(
                _read.obj(s.get("affinity")).get("nodeAffinity")),
            priority=_read.integer(s.get("priority")),
            overhead=dict(_read.obj(s.get("overhead"))),
            readiness_gates=tuple(_read.text(g.get("conditionType"))
                                  for g in _read.objs(s.get("readinessGates"))))

    def all_containers(self) -> tuple[ContainerView, ...]:
        """Init containers, then app containers (the kubelet's order)."""
        return self.init_containers + self.containers

    def ephemeral(self, name: str) -> ContainerView | None:
        """The ephemeral container called ``name``, or None."""
        return next((c for c in self.ephemeral_containers if c.name == name), None)

    def field_path(self, name: str) -> str:
        """The ``fieldPath`` of container ``name`` in Events (kubelet ``fieldPath``):
        ``spec.containers{n}``, ``spec.initContainers{n}`` or ``spec.ephemeralContainers{n}``."""
        if any(c.name == name for c in self.init_containers):
            return f"spec.initContainers{{{name}}}"
        if self.ephemeral(name) is not None:
            return f"spec.ephemeralContainers{{{name}}}"
        return f"spec.containers{{{name}}}"

    def container(self, name: str) -> ContainerView | None:
        """The app or init container called ``name`` (app containers first), or None."""
        return next((c for c in self.containers + self.init_containers if c.name == name), None)


@dataclass(frozen=True)
class PodStatusView:
    """The parts of ``status`` podling reads back: ``phase`` "Pending" when unset (the API
    server's default), IPs "" / () , ``start_time`` "". Container statuses stay as written
    (the agent carries their state objects into the next status as they are)."""

    phase: str = "Pending"
    host_ip: str = ""
    pod_ip: str = ""
    pod_ips: tuple[str, ...] = ()
    start_time: str = ""
    conditions: tuple[ConditionView, ...] = ()
    container_statuses: tuple[ObjMap, ...] = ()
    init_container_statuses: tuple[ObjMap, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "PodStatusView":
        st = _read.obj(obj)
        if not st:
            return _read.default(cls)
        return cls(
            phase=_read.text(st.get("phase"), "Pending"), host_ip=_read.text(st.get("hostIP")),
            pod_ip=_read.text(st.get("podIP")),
            pod_ips=tuple(_read.text(p.get("ip")) for p in _read.objs(st.get("podIPs"))
                          if p.get("ip")),
            start_time=_read.text(st.get("startTime")),
            conditions=conditions(st.get("conditions")),
            container_statuses=_read.objs(st.get("containerStatuses")),
            init_container_statuses=_read.objs(st.get("initContainerStatuses")))

    @property
    def terminal(self) -> bool:
        """Succeeded or Failed: the pod will not run again."""
        return self.phase in TERMINAL_PHASES



@dataclass(frozen=True)
class PodView:
    """A Pod as podling's components read it. ``from_obj`` never raises for missing or
    null fields; it reads the object once (later changes to the dict are not seen).
    ``raw`` is the object as received (not compared), only for handing the whole object
    on to a writer that needs it (an Event's involvedObject); read fields through the
    view."""

    metadata: ObjectMetaView = field(default_factory=ObjectMetaView)
    spec: PodSpecView = field(default_factory=PodSpecView)
    status: PodStatusView = field(default_factory=PodStatusView)
    raw: ObjMap = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_obj(cls, obj: Any) -> "PodView":
        p = _read.obj(obj)
        if not p:
            return _read.default(cls)
        return cls(metadata=ObjectMetaView.from_obj(p.get("metadata")),
                   spec=PodSpecView.from_obj(p.get("spec")),
                   status=PodStatusView.from_obj(p.get("status")), raw=p)

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name)."""
        return (self.metadata.namespace, self.metadata.name)

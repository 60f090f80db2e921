"""Views of a container (``spec.containers[]`` / ``spec.initContainers[]``) and its parts.

Quantities (``resources``, ``divisor``) stay as written (strings or numbers): each reader
parses them with its own error handling. Fields not listed are not read by podling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..types import ObjMap
from . import _read


@dataclass(frozen=True)
class ContainerPortView:
    """``ports[]``: ``container_port`` / ``host_port`` 0 when unset, ``protocol`` "TCP",
    ``host_ip`` "" (the scheduler reads "" as 0.0.0.0)."""

    name: str = ""
    container_port: int = 0
    host_port: int = 0
    protocol: str = "TCP"
    host_ip: str = ""

    @classmethod
    def from_obj(cls, obj: Any) -> "ContainerPortView":
        p = _read.obj(obj)
        if not p:
            return _read.default(cls)
        return cls(name=_read.text(p.get("name")),
                   container_port=_read.integer(p.get("containerPort")),
                   host_port=_read.integer(p.get("hostPort")),
                   protocol=_read.text(p.get("protocol"), "TCP"),
                   host_ip=_read.text(p.get("hostIP")))


@dataclass(frozen=True)
class ResourcesView:
    """``resources``: ``requests`` and ``limits`` as written ({} when unset)."""

    requests: Mapping[str, Any] = field(default_factory=dict)
    limits: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_obj(cls, obj: Any) -> "ResourcesView":
        r = _read.obj(obj)
        if not r:
            return _read.default(cls)
        return cls(requests=dict(_read.obj(r.get("requests"))),
                   limits=dict(_read.obj(r.get("limits"))))


@dataclass(frozen=True)
class ResourceFieldRefView:
    """``env[].valueFrom.resourceFieldRef``; ``divisor`` None when unset."""

    container_name: str = ""
    resource: str = ""
    divisor: Any = None

    @classmethod
    def from_obj(cls, obj: Any) -> "ResourceFieldRefView":
        r = _read.obj(obj)
        if not r:
            return _read.default(cls)
        return cls(container_name=_read.text(r.get("containerName")),
                   resource=_read.text(r.get("resource")), divisor=r.get("divisor") or None)


@dataclass(frozen=True)
class KeySelectorView:
    """``configMapKeyRef`` / ``secretKeyRef`` (``key`` ""), or, without a ``key``, an
    ``envFrom`` ``configMapRef`` / ``secretRef``; ``optional`` False when unset."""

    name: str = ""
    key: str = ""
    optional: bool = False

    @classmethod
    def from_obj(cls, obj: Any) -> "KeySelectorView":
        r = _read.obj(obj)
        if not r:
            return _read.default(cls)
        return cls(name=_read.text(r.get("name")), key=_read.text(r.get("key")),
                   optional=bool(r.get("optional")))


def _selector(value: Any) -> KeySelectorView | None:
    return None if value is None else KeySelectorView.from_obj(value)


@dataclass(frozen=True)
class EnvVarSourceView:
    """``env[].valueFrom``: ``field_path`` (None without a fieldRef); ``resource_field_ref``,
    ``config_map_key_ref`` and ``secret_key_ref`` (None without one); ``kinds``, the source
    keys as written, for naming a source podling does not know."""

    field_path: str | None = None
    resource_field_ref: ResourceFieldRefView | None = None
    config_map_key_ref: KeySelectorView | None = None
    secret_key_ref: KeySelectorView | None = None
    kinds: tuple[str, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "EnvVarSourceView":
        s = _read.obj(obj)
        if not s:
            return _read.default(cls)
        field_ref = s.get("fieldRef")
        resource_ref = s.get("resourceFieldRef")
        return cls(
            field_path=None if field_ref is None
            else _read.text(_read.obj(field_ref).get("fieldPath")),
            resource_field_ref=None if resource_ref is None
            else ResourceFieldRefView.from_obj(resource_ref),
            config_map_key_ref=_selector(s.get("configMapKeyRef")),
            secret_key_ref=_selector(s.get("secretKeyRef")),
            kinds=tuple(str(k) for k in s))


@dataclass(frozen=True)
class EnvFromSourceView:
    """``envFrom[]``: ``prefix`` ""; ``config_map_ref`` / ``secret_ref`` None when unset
    (a valid pod sets exactly one)."""

    prefix: str = ""
    config_map_ref: KeySelectorView | None = None
    secret_ref: KeySelectorView | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> "EnvFromSourceView":
        s = _read.obj(obj)
        if not s:
            return _read.default(cls)
        return cls(prefix=_read.text(s.get("prefix")),
                   config_map_ref=_selector(s.get("configMapRef")),
                   secret_ref=_selector(s.get("secretRef")))


@dataclass(frozen=True)
class EnvVarView:
    """``env[]``: ``value`` "" when unset; ``value_from`` None unless set and non-empty."""

    name: str = ""
    value: str = ""
    value_from: EnvVarSourceView | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> "EnvVarView":
        e = _read.obj(obj)
        if not e:
            return _read.default(cls)
        source = _read.obj(e.get("valueFrom"))
        return cls(name=_read.text(e.get("name")), value=_read.text(e.get("value")),
                   value_from=EnvVarSourceView.from_obj(source) if source else None)


@dataclass(frozen=True)
class HTTPGetActionView:
    """``httpGet``: ``port`` as written (a number or a port name; None when unset),
    ``scheme`` "HTTP", ``headers`` (name, value) pairs in order."""

    path: str = ""
    port: int | str | None = None
    host: str = ""
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "HTTPGetActionView":
        a = _read.obj(obj)
        if not a:
            return _read.default(cls)
        headers = tuple((_read.text(h.get("name")), _read.text(h.get("value")))
                        for h in _read.objs(a.get("httpHeaders")))
        port = a.get("port")
        return cls(path=_read.text(a.get("path")),
                   port=port if isinstance(port, (int, str)) else None,
                   host=_read.text(a.get("host")), scheme=_read.text(a.get("scheme"), "HTTP"),
                   headers=headers)


@dataclass(frozen=True)
class HandlerView:
    """A lifecycle handler: exactly one of ``exec_command`` (None when not exec),
    ``http_get``, ``sleep_seconds`` is set in a valid pod; ``kinds`` are the keys as
    written (for "invalid handler" messages)."""

    exec_command: tuple[str, ...] | None = None
    http_get: HTTPGetActionView | None = None
    sleep_seconds: float | None = None
    kinds: tuple[str, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "HandlerView":
        h = _read.obj(obj)
        if not h:
            return _read.default(cls)
        return cls(
            exec_command=None if "exec" not in h
            else _read.texts(_read.obj(h["exec"]).get("command")),
            http_get=None if "httpGet" not in h else HTTPGetActionView.from_obj(h["httpGet"]),
            sleep_seconds=None if "sleep" not in h
            else float(_read.obj(h["sleep"]).get("seconds") or 0),
            kinds=tuple(sorted(str(k) for k in h)))


@dataclass(frozen=True)
class ProbeView:
    """A ``livenessProbe`` / ``readinessProbe`` / ``startupProbe``. The handler fields are
    None unless written (a valid probe has exactly one): ``exec_command``, ``http_get``,
    ``tcp_port`` / ``tcp_host`` (``tcpSocket``), ``grpc_port`` / ``grpc_service``.
    Numbers take Kubernetes' defaults when unset or 0 (the API server stores them):
    ``period_seconds`` 10, ``timeout_seconds`` 1, ``success_threshold`` 1,
    ``failure_threshold`` 3; ``initial_delay_seconds`` 0;
    ``termination_grace_period_seconds`` None unless set (liveness / startup kills)."""

    exec_command: tuple[str, ...] | None = None
    http_get: HTTPGetActionView | None = None
    tcp_port: int | str | None = None
    tcp_host: str = ""
    grpc_port: int | None = None
    grpc_service: str = ""
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> "ProbeView | None":
        """None when ``obj`` is not a non-empty map (no probe)."""
        p = _read.obj(obj)
        if not p:
            return None
        tcp = _read.obj(p.get("tcpSocket")) if "tcpSocket" in p else None
        grpc = _read.obj(p.get("grpc")) if "grpc" in p else None
        tcp_port = tcp.get("port") if tcp is not None else None
        return cls(
            exec_command=None if "exec" not in p
            else _read.texts(_read.obj(p["exec"]).get("command")),
            http_get=None if "httpGet" not in p else HTTPGetActionView.from_obj(p["httpGet"]),
            tcp_port=tcp_port if isinstance(tcp_port, (int, str)) else None,
            tcp_host=_read.text((tcp or {}).get("host")),
            grpc_port=None if grpc is None else _read.integer(grpc.get("port")),
            grpc_service=_read.text((grpc or {}).get("service")),
            initial_delay_seconds=_read.integer(p.get("initialDelaySeconds")),
            period_seconds=_read.integer(p.get("periodSeconds")) or 10,
            timeout_seconds=_read.integer(p.get("timeoutSeconds")) or 1,
            success_threshold=_read.integer(p.get("successThreshold")) or 1,
            failure_threshold=_read.integer(p.get("failureThreshold")) or 3,
            termination_grace_period_seconds=_read.opt_int(
                p.get("terminationGracePeriodSeconds")))

    @property
    def is_tcp(self) -> bool:
        return self.tcp_port is not None


@dataclass(frozen=True)
class LifecycleView:
    """``lifecycle``: hooks None when unset or empty; ``stop_signal`` "" when unset."""

    post_start: HandlerView | None = None
    pre_stop: HandlerView | None = None
    stop_signal: str = ""

    @classmethod
    def from_obj(cls, obj: Any) -> "LifecycleView":
        lc = _read.obj(obj)
        if not lc:
            return _read.default(cls)
        post, pre = _read.obj(lc.get("postStart")), _read.obj(lc.get("preStop"))
        return cls(post_start=HandlerView.from_obj(post) if post else None,
                   pre_stop=HandlerView.from_obj(pre) if pre else None,
                   stop_signal=_read.text(lc.get("stopSignal")))


@dataclass(frozen=True)
class VolumeMountView:
    """``volumeMounts[]``; strings "" when unset (``mount_propagation`` "" = private)."""

    name: str = ""
    mount_path: str = ""
    read_only: bool = False
    sub_path: str = ""
    sub_path_expr: str = ""
    mount_propagation: str = ""

    @classmethod
    def from_obj(cls, obj: Any) -> "VolumeMountView":
        m = _read.obj(obj)
        if not m:
            return _read.default(cls)
        return cls(name=_read.text(m.get("name")), mount_path=_read.text(m.get("mountPath")),
                   read_only=bool(m.get("readOnly")), sub_path=_read.text(m.get("subPath")),
                   sub_path_expr=_read.text(m.get("subPathExpr")),
                   mount_propagation=_read.text(m.get("mountPropagation")))


@dataclass(frozen=True)
class SeccompProfileView:
    """``securityContext.seccompProfile``: ``type`` RuntimeDefault, Unconfined or Localhost
    (with ``localhost_profile``, a path under the node's seccomp directory)."""

    type: str = ""
    localhost_profile: str = ""

    @classmethod
    def from_obj(cls, obj: Any) -> "SeccompProfileView | None":
        profile = _read.obj(obj)
        if not profile:
            return None
        return cls(type=_read.text(profile.get("type")),
                   localhost_profile=_read.text(profile.get("localhostProfile")))


@dataclass(frozen=True)
class SecurityContextView:
    """A container's ``securityContext``. Fields where unset differs from false / 0
    (``run_as_*``, ``allow_privilege_escalation``) are None when unset; the rest read as
    false / "" / ()."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    privileged: bool = False
    read_only_root_filesystem: bool = False
    allow_privilege_escalation: bool | None = None
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    proc_mount: str = ""
    seccomp: SeccompProfileView | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> "SecurityContextView":
        sc = _read.obj(obj)
        if not sc:
            return _read.default(cls)
        caps = _read.obj(sc.get("capabilities"))
        return cls(run_as_user=_read.opt_int(sc.get("runAsUser")),
                   run_as_group=_read.opt_int(sc.get("runAsGroup")),
                   run_as_non_root=_read.opt_bool(sc.get("runAsNonRoot")),
                   privileged=bool(sc.get("privileged")),
                   read_only_root_filesystem=bool(sc.get("readOnlyRootFilesystem")),
                   allow_privilege_escalation=_read.opt_bool(sc.get("allowPrivilegeEscalation")),
                   capabilities_add=_read.texts(caps.get("add")),
                   capabilities_drop=_read.texts(caps.get("drop")),
                   proc_mount=_read.text(sc.get("procMount")),
                   seccomp=SeccompProfileView.from_obj(sc.get("seccompProfile")))


@dataclass(frozen=True)
class ContainerView:
    """One container. Defaults: strings "", except ``image_pull_policy`` "IfNotPresent",
    ``termination_message_path`` "/dev/termination-log" and ``termination_message_policy``
    "File" (the API server's defaults); ``restart_policy`` "" (only a sidecar init
    container has one: "Always"); ``target_container_name`` "" (only an ephemeral container
    has one). ``liveness_probe``, ``readiness_probe`` and ``startup_probe`` are None when unset.
    ``raw`` is the container as received, for the spec hash, which must not change with this
    view (not compared)."""

    name: str = ""
    image: str = ""
    image_pull_policy: str = "IfNotPresent"
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    env: tuple[EnvVarView, ...] = ()
    env_from: tuple[EnvFromSourceView, ...] = ()
    ports: tuple[ContainerPortView, ...] = ()
    resources: ResourcesView = field(default_factory=ResourcesView)
    lifecycle: LifecycleView = field(default_factory=LifecycleView)
    volume_mounts: tuple[VolumeMountView, ...] = ()
    security_context: SecurityContextView = field(default_factory=SecurityContextView)
    restart_policy: str = ""
    liveness_probe: ProbeView | None = None
    readiness_probe: ProbeView | None = None
    startup_probe: ProbeView | None = None
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    termination_message_path: str = "/dev/termination-log"
    termination_message_policy: str = "File"
    target_container_name: str = ""
    raw: ObjMap = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_obj(cls, obj: Any) -> "ContainerView":
        c = _read.obj(obj)
        if not c:
            return _read.default(cls)
        return cls(
            name=_read.text(c.get("name")), image=_read.text(c.get("image")),
            image_pull_policy=_read.text(c.get("imagePullPolicy"), "IfNotPresent"),
            command=_read.texts(c.get("command")), args=_read.texts(c.get("args")),
            working_dir=_read.text(c.get("workingDir")),
            env=tuple(EnvVarView.from_obj(e) for e in _read.objs(c.get("env"))),
            env_from=tuple(EnvFromSourceView.from_obj(e)
                           for e in _read.objs(c.get("envFrom"))),
            ports=tuple(ContainerPortView.from_obj(p) for p in _read.objs(c.get("ports"))),
            resources=ResourcesView.from_obj(c.get("resources")),
            lifecycle=LifecycleView.from_obj(c.get("lifecycle")),
            volume_mounts=tuple(VolumeMountView.from_obj(m)
                                for m in _read.objs(c.get("volumeMounts"))),
            security_context=SecurityContextView.from_obj(c.get("securityContext")),
            restart_policy=_read.text(c.get("restartPolicy")),
            liveness_probe=ProbeView.from_obj(c.get("livenessProbe")),
            readiness_probe=ProbeView.from_obj(c.get("readinessProbe")),
            startup_probe=ProbeView.from_obj(c.get("startupProbe")),
            tty=bool(c.get("tty")), stdin=bool(c.get("stdin")),
            stdin_once=bool(c.get("stdinOnce")),
            termination_message_path=_read.text(c.get("terminationMessagePath"),
                                                "/dev/termination-log"),
            termination_message_policy=_read.text(c.get("terminationMessagePolicy"), "File"),
            target_container_name=_read.text(c.get("targetContainerName")),
            raw=c)

    @property
    def is_sidecar(self) -> bool:
        """An init container with ``restartPolicy: Always`` keeps running beside the app."""
        return self.restart_policy == "Always"

"""A container's environment as the kubelet builds it: ``env`` in spec order with ``$(VAR)``
expansion and the downward API (``fieldRef``, ``resourceFieldRef``), and containerd's merge
of that environment over the image's.

Pure. Errors are :class:`~podling.agent.kuberuntime.errors.ContainerConfigError`
(``CreateContainerConfigError``) with the kubelet's message where it has one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.agent.kuberuntime.labels import namespace
from podling.api.quantity import QuantityError, parse_quantity
from podling.api.views import ContainerView, EnvVarSourceView, PodView, ResourceFieldRefView


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """Expand ``$(NAME)`` references with ``mapping``; ``$$`` is a literal ``$``; a ``$``
    followed by anything else, or an unclosed ``$(``, is kept as written."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1:]
            advance = 1
            if rest[0] == "$":
                out.append("$")
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close >= 0:
                    out.append(mapping(rest[1:close]))
                    advance = close + 1
                else:
                    out.append("$(")
            else:
                out.append("$" + rest[0])
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def mapping_for(*envs: Mapping[str, str]) -> Callable[[str], str]:
    """The kubelet's ``MappingFuncFor``: known names expand, unknown ones stay ``$(NAME)``."""
    def lookup(name: str) -> str:
        for env in envs:
            if name in env:
                return env[name]
        return f"$({name})"
    return lookup



@dataclass(frozen=True)
class PodContext:
    """What the downward API needs besides the pod object: the pod's and the host's IPs,
    and the node's CPU (millicores) and memory (bytes), the defaults of a
    ``resourceFieldRef`` to a limit the container does not set."""

    pod_ips: tuple[str, ...]
    host_ips: tuple[str, ...]
    node_cpu_milli: int
    node_memory_bytes: int


def _format_map(values: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={json.dumps(values[k])}" for k in sorted(values))


def _subscript(path: str, prefix: str) -> str | None:
    if path.startswith(prefix + "['") and path.endswith("']"):
        return path[len(prefix) + 2:-2]
    return None


def field_ref_value(pod: PodView, path: str, ctx: PodContext) -> str:
    """The value of a downward API ``fieldRef.fieldPath`` (kubelet podFieldSelectorRuntimeValue
    + fieldpath.ExtractFieldPathAsString). Raises ContainerConfigError for unknown paths."""
    meta, spec = pod.metadata, pod.spec
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": namespace(pod),
        "metadata.uid": meta.uid,
        "spec.nodeName": spec.node_name,
        "spec.serviceAccountName": spec.service_account_name,
        "status.hostIP": ctx.host_ips[0] if ctx.host_ips else "",
        "status.hostIPs": ",".join(ctx.host_ips),
        "status.podIP": ctx.pod_ips[0] if ctx.pod_ips else "",
        "status.podIPs": ",".join(ctx.pod_ips),
    }
    if path in simple:
        return simple[path]
    for prefix, values in (("metadata.labels", meta.labels),
                           ("metadata.annotations", meta.annotations)):
        if path == prefix:
            return _format_map(values)
        key = _subscript(path, prefix)
        if key is not None:
            return values.get(key, "")
    raise ContainerConfigError(f"unsupported fieldPath: {path}")




def parse_config_quantity(value: Any, what: str) -> Decimal:
    """A resource quantity of the spec; ContainerConfigError when it does not parse."""
    try:
        return parse_quantity(value)
    except QuantityError as e:
        raise ContainerConfigError(f"invalid quantity {value!r} for {what}: {e}") from e


def resource_field_value(pod: PodView, container: ContainerView, ref: ResourceFieldRefView, *,
                         ctx: PodContext) -> str:
    """``resourceFieldRef``: limits default to node allocatable; the result is the ceiling of
    value / divisor (cpu compared in millicores, memory in bytes), as the kubelet does."""
    target = container
    if ref.container_name:
        found = pod.spec.container(ref.container_name)
        if found is None:
            raise ContainerConfigError(f"cannot find container {ref.container_name!r}")
        target = found
    resource = ref.resource
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory"):
        raise ContainerConfigError(f"unsupported container resource : {resource}")
    values = target.resources.limits if kind == "limits" else target.resources.requests
    if name in values:
        amount = parse_config_quantity(values[name], resource)
    elif kind == "limits":
        amount = (Decimal(ctx.node_cpu_milli) / 1000 if name == "cpu"
                  else Decimal(ctx.node_memory_bytes))
    else:
        amount = Decimal(0)
    divisor = parse_config_quantity(ref.divisor or "1",
                                    resource + " divisor") or Decimal(1)
    if name == "cpu":
        result = math.ceil(milli(amount) / milli(divisor))
    else:
        result = math.ceil(math.ceil(amount) / math.ceil(divisor))
    return str(result)


def milli(value: Decimal) -> int:
    """Quantity.MilliValue (rounded up)."""
    return math.ceil(value * 1000)


def container_env(pod: PodView, container: ContainerView, ctx: PodContext) -> dict[str, str]:
    """The kubelet's ``makeEnvironmentVariables`` for ``container.env`` (in spec order; a
    repeated name keeps its first position and its last value). ``$(VAR)`` expands against
    the earlier entries only. ``envFrom`` and configMap/secret refs are not supported yet."""
    name = container.name
    if container.env_from:
        raise ContainerConfigError(
            f"container {name}: envFrom (configMap/secret) is not supported by podling yet")
    env: dict[str, str] = {}
    for var in container.env:
        key = var.name
        if var.value_from is not None:
            env[key] = _value_from(pod, container, key, source=var.value_from, ctx=ctx)
        else:
            env[key] = expand(var.value, mapping_for(env)) if var.value else ""
    return env


def _value_from(pod: PodView, container: ContainerView, key: str, *,
                source: EnvVarSourceView, ctx: PodContext) -> str:
    if source.field_path is not None:
        return field_ref_value(pod, source.field_path, ctx)
    if source.resource_field_ref is not None:
        return resource_field_value(pod, container, source.resource_field_ref, ctx=ctx)
    what = next((k for k in ("secretKeyRef", "configMapKeyRef") if k in source.kinds),
                "/".join(source.kinds))
    raise ContainerConfigError(
        f"container {container.name}: env {key!r} uses valueFrom.{what}, "
        "which is not supported by podling yet")


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """containerd's replace-or-append: an override of an existing key replaces it in place."""
    result = list(base)
    index = {e.partition("=")[0]: i for i, e in enumerate(result)}
    for entry in overrides:
        key = entry.partition("=")[0]
        if key in index:
            result[index[key]] = entry
        else:
            index[key] = len(result)
            result.append(entry)
    return result

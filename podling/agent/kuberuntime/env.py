"""A container's environment as the kubelet builds it (``makeEnvironmentVariables``), and
containerd's merge of that environment over the image's.

    envFrom, in order ──▶ every key of the ConfigMap / Secret, with ``prefix``
    env, in spec order ─▶ value with ``$(VAR)`` expanded against what is set so far, or
                         valueFrom: fieldRef, resourceFieldRef (:mod:`.resource_fields`),
                         configMapKeyRef, secretKeyRef (:mod:`.env_objects`)
    a later entry replaces an earlier one of the same name (env overrides envFrom)

Keys of ``envFrom`` sources are taken as they are: Kubernetes 1.32 (relaxed environment
variable names, on by default) no longer skips any, and no longer records the
``InvalidEnvironmentVariableNames`` event of earlier releases.

Errors are :class:`~podling.agent.kuberuntime.errors.ContainerConfigError`
(``CreateContainerConfigError``) with the kubelet's message where it has one; a missing
ConfigMap, Secret or key is an :class:`~.errors.UnresolvedReferenceError`, retried soon.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from podling.agent.kuberuntime.env_objects import EnvObjects
from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.agent.kuberuntime.labels import namespace
from podling.agent.kuberuntime.resource_fields import (NodeAllocatable, ResourceFieldError,
                                                       find_container, resource_value)
from podling.agent.objects import ObjectSource
from podling.api.quantity import QuantityError, parse_quantity
from podling.api.resources import CONFIG_MAPS, SECRETS
from podling.api.views import (ContainerView, EnvFromSourceView, EnvVarSourceView, PodView,
                               ResourceFieldRefView)


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
    and the node's allocatable resources, the defaults of a ``resourceFieldRef`` to a limit
    the container does not set."""

    pod_ips: tuple[str, ...]
    host_ips: tuple[str, ...]
    allocatable: NodeAllocatable


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
    """``resourceFieldRef`` for an environment variable (:mod:`.resource_fields`): the
    container itself, or ``containerName``; node allocatable fills the unset limits of the
    asking container and of the pod's app containers (kubelet
    ``defaultPodLimitsForDownwardAPI``)."""
    try:
        if not ref.container_name:
            return resource_value(ref, container, ctx.allocatable)
        target = find_container(pod, ref.container_name)
        is_app = any(c.name == target.name for c in pod.spec.containers)
        return resource_value(ref, target, ctx.allocatable if is_app else None)
    except ResourceFieldError as e:
        raise ContainerConfigError(str(e)) from e


async def container_env(pod: PodView, container: ContainerView, ctx: PodContext,
                        objects: ObjectSource) -> dict[str, str]:
    """The container's own environment (see the module docstring), in order: a name keeps
    its first position and takes its last value. ConfigMaps and Secrets are read through
    ``objects``. Raises ContainerConfigError (UnresolvedReferenceError for a missing one)."""
    refs = EnvObjects(objects, namespace(pod))
    env: dict[str, str] = {}
    for source in container.env_from:
        env.update(await _env_from(source, refs))
    for var in container.env:
        if var.value or var.value_from is None:
            env[var.name] = expand(var.value, mapping_for(env)) if var.value else ""
            continue
        value = await _value_from(pod, container, var.name, source=var.value_from, ctx=ctx,
                                  refs=refs)
        if value is not None:  # None: an optional reference to something missing
            env[var.name] = value
    return env


async def _env_from(source: EnvFromSourceView, refs: EnvObjects) -> dict[str, str]:
    if source.config_map_ref is not None:
        ref, resource = source.config_map_ref, CONFIG_MAPS
    elif source.secret_ref is not None:
        ref, resource = source.secret_ref, SECRETS
    else:
        return {}
    values = await refs.values(resource, ref.name, optional=ref.optional) or {}
    return {source.prefix + key: value for key, value in values.items()}


async def _value_from(pod: PodView, container: ContainerView, key: str, *,
                      source: EnvVarSourceView, ctx: PodContext,
                      refs: EnvObjects) -> str | None:
    if source.field_path is not None:
        return field_ref_value(pod, source.field_path, ctx)
    if source.resource_field_ref is not None:
        return resource_field_value(pod, container, source.resource_field_ref, ctx=ctx)
    if source.config_map_key_ref is not None:
        return await refs.key(CONFIG_MAPS, source.config_map_key_ref)
    if source.secret_key_ref is not None:
        return await refs.key(SECRETS, source.secret_key_ref)
    raise ContainerConfigError(
        f"container {container.name}: env {key!r} uses valueFrom "
        f"{'/'.join(source.kinds) or '{}'}, which podling does not know")


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

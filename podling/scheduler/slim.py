"""What the scheduler keeps of a Pod in its informer: the fields scheduling reads.

The scheduler's pod informer holds every pod in the cluster for as long as it exists, so
a whole decoded pod per pod (~20 KiB) would be most of the API server's memory per stored
pod. :func:`scheduling_fields` (the informer's transform, like client-go's
``SetTransform`` stripping managedFields) drops what no scheduling code reads:

* ``metadata.managedFields`` and ``metadata.annotations`` (the scheduler compares labels,
  never annotations);
* of each container (app, init, ephemeral): the fields that only the node agent uses and
  that Kubernetes forbids changing on a pod (``env``, ``command``, probes, mounts, ...), so
  comparing two slimmed versions of a pod's spec still tells every update that can change
  where it fits (``image``, resources, ports stay);
* ``spec.volumes`` (no scheduling plugin of podling reads volumes; Kubernetes forbids
  changing them on a pod);
* of ``status``: all but ``phase`` and ``conditions`` (terminal pods; PodScheduled).

Everything the scheduler reads through :class:`~podling.api.views.PodView` (spec fields,
labels, uid, deletion, phase, conditions) and what an Event's ``involvedObject`` needs
(kind, apiVersion, name, namespace, uid, resourceVersion) is kept unchanged. The input is
never changed; the result shares the unchanged parts with it.
"""

from __future__ import annotations

from typing import Any

from ..api.types import Obj

DROPPED_METADATA = frozenset({"managedFields", "annotations"})
DROPPED_CONTAINER = frozenset({
    "env", "envFrom", "command", "args", "workingDir", "livenessProbe", "readinessProbe",
    "startupProbe", "lifecycle", "volumeMounts", "volumeDevices", "terminationMessagePath",
    "terminationMessagePolicy", "stdin", "stdinOnce", "tty", "securityContext"})
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
KEPT_STATUS = ("phase", "conditions")


def _without(obj: Any, dropped: frozenset[str]) -> Any:
    if not isinstance(obj, dict) or not dropped.intersection(obj):
        return obj
    return {k: v for k, v in obj.items() if k not in dropped}


def _slim_spec(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    out = {k: v for k, v in spec.items() if k != "volumes"}
    for name in CONTAINER_LISTS:
        containers = spec.get(name)
        if isinstance(containers, list):
            out[name] = [_without(c, DROPPED_CONTAINER) for c in containers]
    return out


def scheduling_fields(pod: Obj) -> Obj:
    """``pod`` with only what scheduling reads (see the module docstring)."""
    out = dict(pod)
    if "metadata" in pod:
        out["metadata"] = _without(pod["metadata"], DROPPED_METADATA)
    if "spec" in pod:
        out["spec"] = _slim_spec(pod["spec"])
    status = pod.get("status")
    if isinstance(status, dict):
        out["status"] = {k: status[k] for k in KEPT_STATUS if k in status}
    return out

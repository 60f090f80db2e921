"""The downward API's container resources (``resourceFieldRef``): the one home of the rule,
for environment variables (:mod:`.env`) and downward-API volume files alike.

Kubernetes 1.32 (``pkg/api/v1/resource`` ``ExtractContainerResourceValue`` and
``MergeContainerResourceLimits``; the kubelet's ``defaultPodLimitsForDownwardAPI``):

- ``resource`` is ``limits.`` or ``requests.`` followed by ``cpu``, ``memory``,
  ``ephemeral-storage`` or ``hugepages-<size>``; anything else is an error
  (``unsupported container resource : <resource>``).
- A limit of cpu, memory or ephemeral-storage that is unset *or zero* reads as the node's
  allocatable amount (:class:`NodeAllocatable`); hugepages limits and every request do not
  (an unset request reads 0; the API server has already copied limits into unset requests).
- The value is ``ceil(value / divisor)``, computed as the kubelet does in float64: cpu in
  millicores (``MilliValue``, rounded up), everything else in whole units (``Value``,
  rounded up). An unset or zero divisor is 1.

Callers choose which container the rule applies to: :func:`find_container` looks a
``containerName`` up (app containers first, then init containers). For environment
variables the kubelet fills node allocatable into the asking container and the pod's app
containers only, so an init container named by ``containerName`` gets ``allocatable=None``;
a downward-API volume passes the allocatable for any container it names.

Pure; errors are :class:`ResourceFieldError` (a ``ValueError``), which each caller
translates into its own error (a container config error, a volume error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from podling.api.quantity import QuantityError, parse_quantity
from podling.api.views import ContainerView, PodView, ResourceFieldRefView

#: the resources whose missing (or zero) limit defaults to the node's allocatable
DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")
_NAMED = ("cpu", "memory", "ephemeral-storage")
HUGEPAGES_PREFIX = "hugepages-"


class ResourceFieldError(ValueError):
    """A resource reference that cannot be resolved; ``str()`` is Kubernetes' message."""


@dataclass(frozen=True)
class NodeAllocatable:
    """The node's allocatable cpu (millicores), memory and ephemeral storage (bytes), as
    its Node status reports them: the default of a limit a container does not set."""

    cpu_milli: int
    memory_bytes: int
    ephemeral_storage_bytes: int = 0

    @classmethod
    def from_resource_list(cls, values: Mapping[str, Any]) -> "NodeAllocatable":
        """From a Node's ``status.allocatable`` (quantities as written; missing ones 0)."""
        def amount(name: str) -> Decimal:
            return _quantity(values[name], name) if name in values else Decimal(0)
        return cls(cpu_milli=milli(amount("cpu")), memory_bytes=math.ceil(amount("memory")),
                   ephemeral_storage_bytes=math.ceil(amount("ephemeral-storage")))

    def amount(self, name: str) -> Decimal:
        """The allocatable ``name`` (one of DEFAULTED_LIMITS) as a quantity value."""
        if name == "cpu":
            return Decimal(self.cpu_milli) / 1000
        return Decimal(self.memory_bytes if name == "memory" else self.ephemeral_storage_bytes)


def milli(value: Decimal) -> int:
    """Quantity.MilliValue: the value in thousandths, rounded up."""
    return math.ceil(value * 1000)


def _quantity(value: Any, what: str) -> Decimal:
    try:
        return parse_quantity(value)
    except QuantityError as e:
        raise ResourceFieldError(f"invalid quantity {value!r} for {what}: {e}") from e


def find_container(pod: PodView, name: str) -> ContainerView:
    """The app or init container ``name`` (kubelet ``findContainerInPod``)."""
    found = pod.spec.container(name)
    if found is None:
        raise ResourceFieldError(f"container {name} not found")
    return found


def _split(resource: str) -> tuple[str, str]:
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not (
            name in _NAMED or name.startswith(HUGEPAGES_PREFIX)):
        raise ResourceFieldError(f"unsupported container resource : {resource}")
    return kind, name


def resource_value(ref: ResourceFieldRefView, container: ContainerView,
                   allocatable: NodeAllocatable | None) -> str:
    """The value of ``ref.resource`` for ``container`` (see the module docstring), with
    unset limits read from ``allocatable`` (None: not defaulted, they read 0)."""
    kind, name = _split(ref.resource)
    values = container.resources.limits if kind == "limits" else container.resources.requests
    amount = _quantity(values[name], ref.resource) if name in values else Decimal(0)
    if kind == "limits" and amount == 0 and allocatable is not None \
            and name in DEFAULTED_LIMITS:
        amount = allocatable.amount(name)
    divisor = _quantity(ref.divisor, ref.resource + " divisor") \
        if ref.divisor is not None else Decimal(0)
    if divisor == 0:
        divisor = Decimal(1)
    if name == "cpu":
        return str(math.ceil(float(milli(amount)) / float(milli(divisor))))
    return str(math.ceil(float(math.ceil(amount)) / float(math.ceil(divisor))))

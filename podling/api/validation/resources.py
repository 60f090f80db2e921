"""Container resource requirements (``validateResourceRequirements`` and resource names)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from podling.api import quantity
from podling.api.errors import Cause, forbidden, invalid, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import NEGATIVE_MSG, as_dict, child, invalid_raw, key

_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_STANDARD_RESOURCES = frozenset([
    "cpu", "memory", "ephemeral-storage", "storage", "pods", "services",
    "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
    "requests.cpu", "requests.memory", "requests.ephemeral-storage", "requests.storage",
    "limits.cpu", "limits.memory", "limits.ephemeral-storage",
])
_INTEGER_RESOURCES = frozenset([
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
])
_QOS_RESOURCES = ("cpu", "memory")


def is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def is_native(name: str) -> bool:
    """No domain prefix, or a ``kubernetes.io/`` one."""
    return "/" not in name or "kubernetes.io/" in name


def is_extended(name: str) -> bool:
    """A fully qualified, non-native name such as ``example.com/gpu``."""
    if is_native(name) or name.startswith("requests."):
        return False
    return not fmt.is_qualified_name("requests." + name)


def is_overcommit_allowed(name: str) -> bool:
    return is_native(name) and not is_hugepages(name)


def _is_standard(name: str) -> bool:
    return (name in _STANDARD_RESOURCES or is_hugepages(name)
            or name.startswith("requests.hugepages-"))


def validate_container_resource_name(name: str, path: str) -> list[Cause]:
    """``validateContainerResourceName``: standard, ``hugepages-*`` or extended."""
    errs = [invalid(path, name, m) for m in fmt.is_qualified_name(name)]
    if not errs and "/" not in name and not _is_standard(name):
        errs.append(invalid(path, name, "must be a standard resource type or fully qualified"))
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not is_hugepages(name):
            errs.append(invalid(path, name, "must be a standard resource for containers"))
    elif not is_native(name) and not is_extended(name):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def parse_resource_list(values: dict[str, Any], path: str
                        ) -> tuple[dict[str, tuple[Decimal, str]], list[Cause]]:
    """Parse every quantity; an unparsable one becomes an Invalid cause (a 400 in Kubernetes,
    where it already fails to decode)."""
    parsed: dict[str, tuple[Decimal, str]] = {}
    errs: list[Cause] = []
    for name, raw in values.items():
        try:
            parsed[name] = quantity.parse_quantity_with_format(raw)
        except quantity.QuantityError as exc:
            errs.append(invalid(key(path, name), raw, str(exc)))
    return parsed, errs


def _text(value: tuple[Decimal, str]) -> str:
    return quantity.format_quantity(value[0], value[1])


def validate_quantity_value(name: str, value: tuple[Decimal, str], path: str) -> list[Cause]:
    """``ValidateResourceQuantityValue``: non-negative, integral for integer resources."""
    errs: list[Cause] = []
    if value[0] < 0:
        errs.append(invalid(path, _text(value), NEGATIVE_MSG))
    if (name in _INTEGER_RESOURCES or is_extended(name)) and (value[0] * 1000) % 1000 != 0:
        errs.append(invalid_raw(path, _text(value), "must be an integer"))
    return errs


def validate_resource_requirements(resources: Any, path: str) -> list[Cause]:
    """Names, quantities, ``requests <= limits`` (``==`` for non-overcommittable ones)."""
    resources = as_dict(resources)
    lim_path, req_path = child(path, "limits"), child(path, "requests")
    limits, errs = parse_resource_list(as_dict(resources.get("limits")), lim_path)
    requests, req_errs = parse_resource_list(as_dict(resources.get("requests")), req_path)
    for name, value in limits.items():
        errs += validate_container_resource_name(name, key(lim_path, name))
        errs += validate_quantity_value(name, value, key(lim_path, name))
    errs += req_errs
    for name, value in requests.items():
        errs += validate_container_resource_name(name, key(req_path, name))
        errs += validate_quantity_value(name, value, key(req_path, name))
        errs += _request_vs_limit(name, value, limits, lim_path, req_path)
    names = set(limits) | set(requests)
    if any(is_hugepages(n) for n in names) and not any(n in _QOS_RESOURCES for n in names):
        errs.append(forbidden(path, "HugePages require cpu or memory"))
    return errs


def _request_vs_limit(name: str, value: tuple[Decimal, str],
                      limits: dict[str, tuple[Decimal, str]], lim_path: str,
                      req_path: str) -> list[Cause]:
    if name not in limits:
        if not is_overcommit_allowed(name):
            return [required(lim_path, "Limit must be set for non overcommitable resources")]
        return []
    limit = limits[name]
    if value[0] != limit[0] and not is_overcommit_allowed(name):
        return [invalid(req_path, _text(value),
                        f"must be equal to {name} limit of {_text(limit)}")]
    if value[0] > limit[0]:
        return [invalid(req_path, _text(value),
                        f"must be less than or equal to {name} limit of {_text(limit)}")]
    return []

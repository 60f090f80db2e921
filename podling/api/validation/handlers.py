"""Probes and lifecycle hooks (``validateProbe``, ``validateLifecycle``, ``validateHandler``)."""

from __future__ import annotations

from typing import Any

from podling.api.errors import Cause, forbidden, invalid, not_supported, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import (as_dict, as_list, as_str, child, each_msg, is_int,
                                          nonnegative)

PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")


def validate_port_num_or_name(port: Any, path: str) -> list[Cause]:
    """An int-or-string port: 1..65535 or an IANA service name."""
    if isinstance(port, str):
        return each_msg(path, port, fmt.is_valid_port_name(port))
    value = port if is_int(port) else 0
    return each_msg(path, value, fmt.is_valid_port_num(value))


def _validate_http_get(action: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    if not as_str(action.get("path")):
        errs.append(required(child(path, "path")))
    errs += validate_port_num_or_name(action.get("port"), child(path, "port"))
    scheme = as_str(action.get("scheme"))
    if scheme not in ("HTTP", "HTTPS"):
        errs.append(not_supported(child(path, "scheme"), scheme, ["HTTP", "HTTPS"]))
    for header in as_list(action.get("httpHeaders")):
        name = as_str(as_dict(header).get("name"))
        errs += each_msg(child(path, "httpHeaders"), name, fmt.is_http_header_name(name))
    return errs


def _validate_sleep(action: dict[str, Any], grace: Any, path: str) -> list[Cause]:
    seconds = action.get("seconds", 0)
    if not is_int(grace) or not is_int(seconds):
        return []
    if seconds <= 0 or seconds > grace:
        return [invalid(path, seconds, "must be greater than 0 and less than "
                                       f"terminationGracePeriodSeconds ({grace}). Enable "
                                       "AllowPodLifecycleSleepActionZeroValue feature gate "
                                       "for zero sleep.")]
    return []


def _validate_action(kind: str, action: dict[str, Any], grace: Any, path: str) -> list[Cause]:
    if kind == "exec":
        return [] if as_list(action.get("command")) else [required(child(path, "command"))]
    if kind == "httpGet":
        return _validate_http_get(action, path)
    if kind == "tcpSocket":
        return validate_port_num_or_name(action.get("port"), child(path, "port"))
    if kind == "grpc":
        port = action.get("port") if is_int(action.get("port")) else 0
        return each_msg(child(path, "port"), port, fmt.is_valid_port_num(port))
    return _validate_sleep(action, grace, path)


def validate_handler(handler: dict[str, Any], kinds: tuple[str, ...], grace: Any,
                     path: str) -> list[Cause]:
    """Exactly one handler type; the first set one is validated, the others are Forbidden."""
    errs: list[Cause] = []
    count = 0
    for kind in kinds:
        if handler.get(kind) is None:
            continue
        if count:
            errs.append(forbidden(child(path, kind), "may not specify more than 1 handler type"))
            continue
        count += 1
        errs += _validate_action(kind, as_dict(handler.get(kind)), grace, child(path, kind))
    if not count:
        errs.append(required(path, "must specify a handler type"))
    return errs


def validate_lifecycle(lifecycle: Any, grace: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    lifecycle = as_dict(lifecycle)
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook) is not None:
            errs += validate_handler(as_dict(lifecycle[hook]), LIFECYCLE_HANDLERS, grace,
                                     child(path, hook))
    return errs


def validate_probe(probe: Any, grace: Any, path: str, *, kind: str) -> list[Cause]:
    """``kind`` is ``liveness``, ``readiness`` or ``startup``; ``None`` probes are valid."""
    if probe is None:
        return []
    probe = as_dict(probe)
    errs = validate_handler(probe, PROBE_HANDLERS, grace, path)
    for field in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                  "failureThreshold"):
        errs += nonnegative(child(path, field), probe.get(field))
    probe_grace = probe.get("terminationGracePeriodSeconds")
    if is_int(probe_grace) and probe_grace <= 0:
        errs.append(invalid(child(path, "terminationGracePeriodSeconds"), probe_grace,
                            "must be greater than 0"))
    if kind in ("liveness", "startup") and probe.get("successThreshold", 0) != 1:
        errs.append(invalid(child(path, "successThreshold"), probe.get("successThreshold", 0),
                            "must be 1"))
    if kind == "readiness" and probe_grace is not None:
        errs.append(invalid(child(path, "terminationGracePeriodSeconds"), probe_grace,
                            "must not be set for readinessProbes"))
    return errs


def validate_container_probes(ctr: dict[str, Any], grace: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    if ctr.get("lifecycle") is not None:
        errs += validate_lifecycle(ctr["lifecycle"], grace, child(path, "lifecycle"))
    for kind in ("liveness", "readiness", "startup"):
        field = kind + "Probe"
        errs += validate_probe(ctr.get(field), grace, child(path, field), kind=kind)
    return errs

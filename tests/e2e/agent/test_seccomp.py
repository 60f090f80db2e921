"""seccomp profiles, checked from inside real containers: RuntimeDefault filters (the
kernel reports a filter in /proc/self/status, and a call that needs no capability but is
off the allow-list — creating a user namespace — fails with EPERM), Unconfined and no
profile do not, the container's profile overrides the pod's, a Localhost profile from the
node's seccomp directory is applied, and a missing one is a CreateContainerError."""

from __future__ import annotations

import json
import os

from manifests import busybox, pod

PROBE = ("grep '^Seccomp:' /proc/self/status; "
         "unshare -U true 2>&1 && echo userns-made; "
         "mkdir /tmp/made 2>&1 && echo mkdir-ok; sleep 3600")


def _run(cluster, wait, name: str, **spec) -> str:
    """Start a pod running PROBE; its log once the probe is done."""
    container = busybox("c", PROBE, **spec.pop("container", {}))
    cluster.apply(json.dumps(pod(name, cluster.node, [container], **spec)))
    return wait(lambda: (lambda out: out if "mkdir" in out else "")(
        cluster.kubectl("logs", name, check=False).stdout), timeout=90)


def _delete(cluster, *names: str) -> None:
    cluster.kubectl("delete", "pod", *names, "--ignore-not-found", "--timeout=60s")


def test_runtime_default_filters_and_unconfined_does_not(cluster, wait):
    logs = {
        "sc-none": _run(cluster, wait, "sc-none"),
        "sc-unconfined": _run(cluster, wait, "sc-unconfined", securityContext={
            "seccompProfile": {"type": "Unconfined"}}),
        "sc-default": _run(cluster, wait, "sc-default", securityContext={
            "seccompProfile": {"type": "RuntimeDefault"}}),
        "sc-override": _run(cluster, wait, "sc-override", securityContext={
            "seccompProfile": {"type": "RuntimeDefault"}}, container={"securityContext": {
                "seccompProfile": {"type": "Unconfined"}}}),
    }
    try:
        for name in ("sc-none", "sc-unconfined", "sc-override"):
            assert "Seccomp:\t0" in logs[name] and "userns-made" in logs[name], logs[name]
        default = logs["sc-default"]
        assert "Seccomp:\t2" in default, default
        assert "unshare(0x10000000): Operation not permitted" in default, default
        assert "mkdir-ok" in default  # ordinary calls go through
    finally:
        _delete(cluster, *logs)


def test_a_localhost_profile_from_the_node_and_a_missing_one(cluster, wait):
    profiles = os.path.join(cluster.data_dir, "agent", "seccomp", "profiles")
    os.makedirs(profiles, exist_ok=True)
    with open(os.path.join(profiles, "no-mkdir.json"), "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}, f)
    try:
        out = _run(cluster, wait, "sc-local", securityContext={"seccompProfile": {
            "type": "Localhost", "localhostProfile": "profiles/no-mkdir.json"}})
        assert "Seccomp:\t2" in out and "userns-made" in out, out
        assert "mkdir: can't create directory '/tmp/made': Operation not permitted" in out
        cluster.apply(json.dumps(pod("sc-missing", cluster.node, [busybox("c", "true")],
                                     securityContext={"seccompProfile": {
                                         "type": "Localhost",
                                         "localhostProfile": "profiles/absent.json"}})))
        path = "{.status.containerStatuses[0].state.waiting}"
        waiting = wait(lambda: (lambda text: json.loads(text) if text else None)(
            cluster.kubectl("get", "pod", "sc-missing", "-o", f"jsonpath={path}").stdout),
            timeout=60)
        assert waiting["reason"] == "CreateContainerError"
        assert waiting["message"] == (
            f"cannot load seccomp profile "
            f"'{profiles}/absent.json': No such file or directory")
    finally:
        _delete(cluster, "sc-local", "sc-missing")

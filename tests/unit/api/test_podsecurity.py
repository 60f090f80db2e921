"""Pod Security Standards (api/podsecurity.py): each check's verdict and wording as Pod
Security Admission 1.32 writes it, the order of the checks, and the namespace labels."""

from __future__ import annotations

from typing import Any

import pytest

from podling.api import podsecurity as ps
from podling.api.podsecurity import LevelVersion, Policy


def pod(*containers: dict, **spec: Any) -> dict:
    return {"metadata": {"name": "x", "annotations": spec.pop("annotations", {})},
            "spec": {"containers": list(containers or [{"name": "x", "image": "i"}]), **spec}}


def c(name: str, **sc: Any) -> dict:
    return {"name": name, "image": "i", **({"securityContext": sc} if sc else {})}


RESTRICTED_OK = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                 "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def test_a_bare_pod_at_restricted() -> None:
    assert ps.forbidden_detail(ps.evaluate(pod(), "restricted")) == (
        'allowPrivilegeEscalation != false (container "x" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "x" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != '
        'true (pod or container "x" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "x" must set securityContext.seccompProfile.type '
        'to "RuntimeDefault" or "Localhost")')
    assert ps.evaluate(pod(c("x", **RESTRICTED_OK)), "restricted") == []
    assert ps.evaluate(pod(), "baseline") == [] and ps.evaluate(pod(), "privileged") == []


@pytest.mark.parametrize("subject, level, expected", [
    (pod(c("a", privileged=True), c("b", privileged=True)), "baseline",
     [("privileged", 'containers "a", "b" must not set securityContext.privileged=true')]),
    (pod(hostNetwork=True, hostIPC=True), "baseline",
     [("host namespaces", "hostNetwork=true, hostIPC=true")]),
    (pod(c("a", capabilities={"add": ["SYS_ADMIN", "NET_RAW", "CHOWN"]})), "baseline",
     [("non-default capabilities", 'container "a" must not include "NET_RAW", "SYS_ADMIN" in '
       "securityContext.capabilities.add")]),
    (pod({"name": "b", "image": "i", "ports": [{"containerPort": 1, "hostPort": 80}]},
         {"name": "c", "image": "i", "ports": [{"containerPort": 1, "hostPort": 10000}]}),
     "baseline", [("hostPort", 'containers "b", "c" use hostPorts 10000, 80')]),
    (pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}]), "baseline",
     [("hostPath volumes", 'volume "h"')]),
    (pod(c("a", procMount="Unmasked")), "baseline",
     [("procMount", 'container "a" must not set securityContext.procMount to "Unmasked"')]),
    (pod(c("a", seLinuxOptions={"type": "spc_t", "user": "u"}),
         securityContext={"seLinuxOptions": {"role": "r"}}), "baseline",
     [("seLinuxOptions", 'pod and container "a" set forbidden securityContext.seLinuxOptions: '
       'type "spc_t"; user may not be set; role may not be set')]),
    (pod(c("a", seccompProfile={"type": "Unconfined"}),
         securityContext={"seccompProfile": {"type": "Unconfined"}}), "baseline",
     [("seccompProfile", 'pod and container "a" must not set '
       'securityContext.seccompProfile.type to "Unconfined"')]),
    (pod(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                      {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                                      {"name": "net.core.somaxconn", "value": "1"}]}),
     "baseline", [("forbidden sysctls", "kernel.msgmax, net.core.somaxconn")]),
    (pod(c("a", appArmorProfile={"type": "Unconfined"}), annotations={
        "container.apparmor.security.beta.kubernetes.io/a": "unconfined"}), "baseline",
     [("forbidden AppArmor profiles", 'container "a" and annotation must not set AppArmor '
       'profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/a='
       '"unconfined""')]),
    (pod(c("a", windowsOptions={"hostProcess": True})), "baseline",
     [("hostProcess", 'container "a" must not set '
       "securityContext.windowsOptions.hostProcess=true")]),
])
def test_baseline_checks(subject: dict, level: str, expected) -> None:
    assert ps.evaluate(subject, level) == expected


def test_restricted_checks_with_explicit_values() -> None:
    ok = dict(RESTRICTED_OK)
    subject = pod(c("a", **{**ok, "runAsNonRoot": False, "runAsUser": 0,
                            "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}),
                  c("b", **{**ok, "seccompProfile": {"type": "Unconfined"}}),
                  volumes=[{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {}},
                           {"name": "e", "emptyDir": {}}])
    assert ps.evaluate(subject, "restricted") == [
        ("unrestricted capabilities", 'container "a" must not include "SYS_ADMIN" in '
         "securityContext.capabilities.add"),
        ("restricted volume types", 'volumes "h", "n" use restricted volume types "hostPath", '
         '"nfs"'),
        ("runAsNonRoot != true", 'container "a" must not set securityContext.runAsNonRoot=false'),
        ("runAsUser=0", 'container "a" must not set runAsUser=0'),
        ("seccompProfile", 'container "b" must not set securityContext.seccompProfile.type to '
         '"Unconfined"')]


def test_pod_level_settings_cover_the_containers() -> None:
    subject = pod(c("a", allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}),
                  securityContext={"runAsNonRoot": True, "seccompProfile": {
                      "type": "Localhost", "localhostProfile": "p.json"}})
    assert ps.evaluate(subject, "restricted") == []


def test_policy_from_labels() -> None:
    p = "pod-security.kubernetes.io/"
    assert ps.policy({}) == Policy()
    assert ps.policy({p + "enforce": "baseline"}) == Policy(
        LevelVersion("baseline"), LevelVersion(), LevelVersion("baseline"))  # warn follows
    assert ps.policy({p + "enforce": "baseline", p + "enforce-version": "v1.25",
                      p + "warn": "restricted"}).warn == LevelVersion("restricted")
    assert ps.policy({p + "enforce": "nope"}).enforce == LevelVersion("restricted")
    assert ps.policy({p + "warn": "nope"}).warn == LevelVersion("privileged")
    assert str(ps.policy({p + "enforce": "baseline", p + "enforce-version": "v1.99"}).enforce) \
        == "baseline:v1.99"
    assert ps.label_errors({p + "enforce": "nope", p + "enforce-version": "v1"}) == [
        (p + "enforce", "nope", "must be one of privileged, baseline, restricted"),
        (p + "enforce-version", "v1", 'must be "latest" or "v1.x"')]

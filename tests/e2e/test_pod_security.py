"""Pod Security Admission through the real kubectl: namespaces labelled with each level,
the exact denial and warning texts kubectl prints, and the 422 for bad labels."""

from __future__ import annotations

import json
import uuid

P = "pod-security.kubernetes.io/"
RESTRICTED_OK = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                 "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def namespace(server, **labels: str) -> str:
    name = f"psa-{uuid.uuid4().hex[:8]}"
    server.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {
            P + key.replace("_", "-"): value for key, value in labels.items()}}}))
    return name


def create(server, ns: str, name: str, **sc):
    container = {"name": name, "image": "busybox", **({"securityContext": sc} if sc else {})}
    return server.kubectl("create", "-n", ns, "-f", "-", check=False, input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"schedulerName": "nobody", "containers": [container]}}))


def test_restricted_refuses_a_bare_pod_and_admits_a_restricted_one(shared_server):
    ns = namespace(shared_server, enforce="restricted")
    out = create(shared_server, ns, "x")
    assert out.returncode == 1
    assert out.stderr == (
        'Error from server (Forbidden): error when creating "STDIN": pods "x" is forbidden: '
        'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "x" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "x" must set '
        'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
        '"x" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container '
        '"x" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
        '"Localhost")\n')
    ok = create(shared_server, ns, "y", **RESTRICTED_OK)
    assert (ok.returncode, ok.stderr) == (0, "")


def test_baseline_enforced_with_restricted_warnings(shared_server):
    ns = namespace(shared_server, enforce="baseline", enforce_version="v1.32",
                   warn="restricted")
    out = create(shared_server, ns, "priv", privileged=True)
    assert out.returncode == 1
    assert out.stderr == (
        'Error from server (Forbidden): error when creating "STDIN": pods "priv" is '
        'forbidden: violates PodSecurity "baseline:v1.32": privileged (container "priv" '
        'must not set securityContext.privileged=true)\n')
    warned = create(shared_server, ns, "plain")
    assert warned.returncode == 0 and warned.stdout == "pod/plain created\n"
    assert warned.stderr.startswith('Warning: would violate PodSecurity "restricted:latest": '
                                    "allowPrivilegeEscalation != false"), warned.stderr


def test_privileged_namespaces_and_no_labels_admit_anything(shared_server):
    for ns in (namespace(shared_server, enforce="privileged"), namespace(shared_server)):
        out = create(shared_server, ns, "priv", privileged=True)
        assert (out.returncode, out.stderr) == (0, "")


def test_bad_labels_are_422(shared_server):
    name = f"psa-{uuid.uuid4().hex[:8]}"
    out = shared_server.kubectl("create", "namespace", name, "--dry-run=client", "-o", "json")
    doc = json.loads(out.stdout)
    doc["metadata"]["labels"] = {P + "enforce": "strict", P + "enforce-version": "1.25"}
    out = shared_server.kubectl("create", "-f", "-", check=False, input=json.dumps(doc))
    assert out.returncode == 1
    assert out.stderr == (
        f'The Namespace "{name}" is invalid: \n'
        f'* metadata.labels[{P}enforce]: Invalid value: "strict": must be one of privileged, '
        'baseline, restricted\n'
        f'* metadata.labels[{P}enforce-version]: Invalid value: "1.25": must be "latest" or '
        '"v1.x"\n')


def test_significant_updates_are_evaluated_and_others_are_not(shared_server):
    ns = namespace(shared_server, enforce="privileged")
    assert create(shared_server, ns, "old").returncode == 0  # a bare pod, before the labels
    shared_server.kubectl("label", "namespace", ns, "--overwrite", P + "enforce=baseline")
    debug = shared_server.kubectl("debug", "-n", ns, "old", "--image=busybox",
                                  "--profile=sysadmin", "--", "true", check=False)
    assert debug.returncode == 1
    assert debug.stderr.startswith(
        'Error from server (Forbidden): pods "old" is forbidden: violates PodSecurity '
        '"baseline:latest": privileged (container "debugger-'), debug.stderr
    labelled = shared_server.kubectl("label", "pod", "-n", ns, "old", "a=b", check=False)
    assert (labelled.returncode, labelled.stderr) == (0, "")  # not significant: no check
    shared_server.kubectl("label", "namespace", ns, "--overwrite", P + "enforce=restricted")
    image = shared_server.kubectl("set", "image", "-n", ns, "pod/old", "old=busybox:1.36",
                                  check=False)
    assert image.returncode == 1
    assert 'pods "old" is forbidden: violates PodSecurity "restricted:latest": ' \
        "allowPrivilegeEscalation != false" in image.stderr, image.stderr


def test_tightening_a_namespace_warns_about_its_pods(shared_server):
    ns = namespace(shared_server)
    for name in ("b-plain", "a-plain", "c-priv"):
        extra = {"privileged": True} if name == "c-priv" else {}
        assert create(shared_server, ns, name, **extra).returncode == 0
    assert create(shared_server, ns, "d-ok", **RESTRICTED_OK).returncode == 0
    out = shared_server.kubectl("label", "namespace", ns, P + "enforce=restricted")
    assert out.stdout == f"namespace/{ns} labeled\n"
    assert out.stderr == (
        f'Warning: existing pods in namespace "{ns}" violate the new PodSecurity enforce '
        'level "restricted:latest"\n'
        "Warning: a-plain (and 1 other pod): allowPrivilegeEscalation != false, unrestricted "
        "capabilities, runAsNonRoot != true, seccompProfile\n"
        "Warning: c-priv: privileged, allowPrivilegeEscalation != false, unrestricted "
        "capabilities, runAsNonRoot != true, seccompProfile\n")
    relaxed = shared_server.kubectl("label", "namespace", ns, "--overwrite",
                                    P + "enforce=baseline")
    assert relaxed.stderr == ""  # relaxing says nothing

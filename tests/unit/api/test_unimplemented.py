"""Which user-set Pod/Node fields podling stores but does not act on."""

from __future__ import annotations

import pytest
from builders import make_pod

from podling.api.unimplemented import unimplemented_fields, warning_text


def pod(**spec: object) -> dict:
    """What a user writes: pod p, container c (nginx), ``spec`` on top."""
    return make_pod("p", namespace=None).container("c", "nginx").bare().set_spec(**spec).build()


def container(**fields: object) -> dict:
    return {"name": "c", "image": "nginx", **fields}


def test_a_plain_pod_has_nothing_to_report() -> None:
    assert unimplemented_fields("Pod", pod()) == []


def test_everything_the_agent_implements_is_quiet() -> None:
    full = container(
        command=["sh"], args=["-c", "true"], workingDir="/w", ports=[{"containerPort": 80}],
        env=[{"name": "A", "value": "1"},
             {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
             {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}},
             {"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k",
                                                          "optional": True}}}],
        envFrom=[{"configMapRef": {"name": "m"}, "prefix": "CM_"},
                 {"secretRef": {"name": "s", "optional": True}}],
        resources={"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
        securityContext={"runAsUser": 1000, "privileged": True,
                         "capabilities": {"add": ["NET_ADMIN"]},
                         "seccompProfile": {"type": "RuntimeDefault"}},
        lifecycle={"postStart": {"exec": {"command": ["x"]}}, "preStop": {"sleep": {"seconds": 1}}},
        livenessProbe={"httpGet": {"port": 80}, "terminationGracePeriodSeconds": 3},
        readinessProbe={"tcpSocket": {"port": 80}, "initialDelaySeconds": 1, "periodSeconds": 2,
                        "timeoutSeconds": 3, "successThreshold": 2, "failureThreshold": 4},
        startupProbe={"exec": {"command": ["x"]}}, stdin=True, tty=True,
        terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File",
        volumeMounts=[{"name": "v", "mountPath": "/v"}], imagePullPolicy="IfNotPresent")
    obj = pod(
        containers=[full], initContainers=[container(name="init", restartPolicy="Always")],
        nodeName="n1", nodeSelector={"disk": "ssd"}, tolerations=[{"operator": "Exists"}],
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
        hostAliases=[{"ip": "1.2.3.4", "hostnames": ["a"]}], hostname="h", subdomain="s",
        hostNetwork=True, hostPID=True, hostIPC=True, shareProcessNamespace=True,
        terminationGracePeriodSeconds=5, activeDeadlineSeconds=60, restartPolicy="Never",
        dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"]},
        securityContext={"runAsUser": 1, "runAsGroup": 2, "runAsNonRoot": True, "fsGroup": 3,
                         "supplementalGroups": [4]},
        volumes=[{"name": "v", "emptyDir": {"sizeLimit": "1Mi"}},
                 {"name": "h", "hostPath": {"path": "/tmp"}},
                 {"name": "c", "configMap": {"name": "cm", "items": [{"key": "k", "path": "p"}],
                                             "defaultMode": 0o400, "optional": True}},
                 {"name": "s", "secret": {"secretName": "s", "optional": True}},
                 {"name": "d", "downwardAPI": {"items": [{"path": "l", "fieldRef": {
                     "fieldPath": "metadata.labels"}}]}},
                 {"name": "p", "projected": {"sources": [
                     {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                     {"configMap": {"name": "kube-root-ca.crt"}}]}}],
        schedulerName="default-scheduler", priority=0, imagePullSecrets=[{"name": "reg"}],
        enableServiceLinks=True)
    assert unimplemented_fields("Pod", obj) == []


@pytest.mark.parametrize("spec, expected", [
    ({"topologySpreadConstraints": [{"maxSkew": 1}]}, ["spec.topologySpreadConstraints"]),
    ({"affinity": {"nodeAffinity": {}, "podAffinity": {"x": 1}}}, ["spec.affinity.podAffinity"]),
    ({"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "hostPath": {"path": "/"}},
                  {"name": "c", "nfs": {"server": "s", "path": "/"}}]}, ["spec.volumes[2].nfs"]),
    ({"containers": [container(resizePolicy=[{"resourceName": "cpu"}])]},
     ["spec.containers[0].resizePolicy"]),
    ({"containers": [container(securityContext={"seccompProfile": {"type": "RuntimeDefault"},
                                                "appArmorProfile": {"type": "Unconfined"}})]},
     ["spec.containers[0].securityContext.appArmorProfile"]),  # seccomp is applied
    ({"containers": [container(livenessProbe={"grpc": {"port": 9000}, "periodSeconds": 1})]},
     []),  # grpc probes run
    ({"runtimeClassName": "gvisor"}, ["spec.runtimeClassName"]),
    ({"readinessGates": [{"conditionType": "x"}]}, ["spec.readinessGates"]),
    ({"overhead": {"cpu": "1"}}, ["spec.overhead"]),
    ({"ephemeralContainers": [container(targetContainerName="c", resizePolicy=[{"a": 1}])]},
     ["spec.ephemeralContainers[0].resizePolicy"]),
    ({"resourceClaims": [{"name": "r"}]}, ["spec.resourceClaims"]),
    ({"os": {"name": "linux"}}, ["spec.os"]),
    ({"securityContext": {"sysctls": [{"name": "a", "value": "1"}],
                          "seLinuxOptions": {"level": "s0"}}},
     ["spec.securityContext.seLinuxOptions"]),  # sysctls are applied
])
def test_set_but_unimplemented_fields_are_reported(spec: dict, expected: list[str]) -> None:
    assert unimplemented_fields("Pod", pod(**spec)) == expected


@pytest.mark.parametrize("spec", [
    {"serviceAccountName": "default", "serviceAccount": "default"},
    {"serviceAccountName": "builder", "serviceAccount": "builder"},
    {"automountServiceAccountToken": False},
    {"automountServiceAccountToken": True},
    {"hostUsers": True},
    {"preemptionPolicy": "PreemptLowerPriority"},
    {"runtimeClassName": "", "readinessGates": [], "overhead": {}, "os": None},
    {"containers": [container(securityContext={"procMount": "Default"})]},
    # acted on: the node refuses a user namespace; Unmasked needs one; emptyDirs get fsGroup
    {"hostUsers": False, "securityContext": {"fsGroup": 5, "fsGroupChangePolicy": "Always"},
     "containers": [container(securityContext={"procMount": "Unmasked"})]},
])
def test_empty_values_and_kubernetes_defaults_are_quiet(spec: dict) -> None:
    assert unimplemented_fields("Pod", pod(**spec)) == []


def test_results_follow_document_order() -> None:
    obj = pod(runtimeClassName="x", containers=[container(resizePolicy=[{"a": 1}])],
              os={"name": "linux"})
    assert unimplemented_fields("Pod", obj) == [
        "spec.containers[0].resizePolicy", "spec.runtimeClassName", "spec.os"]


def test_status_and_metadata_are_never_reported() -> None:
    obj = pod()
    obj["status"] = {"resize": "Proposed", "nominatedNodeName": "n"}
    obj["metadata"]["ownerReferences"] = [{"uid": "x"}]
    assert unimplemented_fields("Pod", obj) == []


def test_node_config_source_is_reported_and_taints_are_not() -> None:
    node = {"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "unschedulable": True,
                     "configSource": {"configMap": {"name": "x"}}}}
    assert unimplemented_fields("Node", node) == ["spec.configSource"]


def test_other_kinds_and_bad_shapes_give_nothing() -> None:
    assert unimplemented_fields("Lease", {"spec": {"x": 1}}) == []
    assert unimplemented_fields("Pod", {"spec": "nope"}) == []
    assert unimplemented_fields("Pod", pod(containers="nope")) == []


def test_warning_text() -> None:
    assert warning_text("spec.runtimeClassName") == (
        "spec.runtimeClassName: podling stores this field but does not act on it yet")

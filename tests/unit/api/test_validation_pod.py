"""Pod create validation: a table of invalid pods (one expected cause each) and valid pods."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import builders
import pytest

from podling.api.defaults import default_pod
from podling.api.errors import Cause
from podling.api.validation import validate_pod

Pod = dict[str, Any]


class PodBuilder(builders.PodBuilder):
    """tests/builders.py's pod as these tables need it: no container until one is added
    (``container()`` defaults to c / nginx), and ``build()`` returns what the server
    validates: the bare pod with the API defaults applied.
    ``make_pod("p").container("a").set_spec(hostPID=True).build()``"""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.no_containers().bare()

    def container(self, name: str = "c", image: str = "nginx", **fields: Any) -> PodBuilder:
        super().container(name, image, **fields)
        return self

    def build(self) -> Pod:
        pod = super().build()
        default_pod(pod)
        return pod


def make_pod(name: str = "p") -> PodBuilder:
    return PodBuilder(name)


def ok() -> PodBuilder:
    return make_pod("p").container("c")


def mutate(builder: PodBuilder, fn: Callable[[Pod], None]) -> Pod:
    pod = builder.build()
    fn(pod)
    return pod


def c0(pod: Pod) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters"
SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric"
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
PULL = 'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'
LIFECYCLE_EXEC = {"exec": {"command": ["true"]}}

# (id, pod, field, reason, message substring — whole message where it is short)
INVALID: list[tuple[str, Any, str, str, str]] = [
    # --- containers ---
    ("no-containers", make_pod("p").build(), "spec.containers", "FieldValueRequired",
     "Required value"),
    ("container-name-missing", mutate(ok(), lambda p: c0(p).pop("name")),
     "spec.containers[0].name", "FieldValueRequired", "Required value"),
    ("container-name-invalid", make_pod().container("Web_1").build(), "spec.containers[0].name",
     "FieldValueInvalid", 'Invalid value: "Web_1": ' + LABEL_MSG),
    ("container-name-duplicate", make_pod().container("a").container("a").build(),
     "spec.containers[1].name", "FieldValueDuplicate", 'Duplicate value: "a"'),
    ("init-name-duplicates-container", make_pod().container("a").init_container("a").build(),
     "spec.initContainers[0].name", "FieldValueDuplicate", 'Duplicate value: "a"'),
    ("image-missing", make_pod().container("c", image="").build(), "spec.containers[0].image",
     "FieldValueRequired", "Required value"),
    ("image-whitespace", make_pod().container("c", image=" nginx").build(),
     "spec.containers[0].image", "FieldValueInvalid",
     "must not have leading or trailing whitespace"),
    ("pull-policy", make_pod().container("c", imagePullPolicy="Sometimes").build(),
     "spec.containers[0].imagePullPolicy", "FieldValueNotSupported", PULL),
    ("termination-message-policy",
     make_pod().container("c", terminationMessagePolicy="Never").build(),
     "spec.containers[0].terminationMessagePolicy", "FieldValueNotSupported",
     'supported values: "File", "FallbackToLogsOnError"'),
    ("restart-policy-on-container", make_pod().container("c", restartPolicy="Always").build(),
     "spec.containers[0].restartPolicy", "FieldValueForbidden",
     "Forbidden: may not be set for non-init containers"),
    ("init-restart-policy", make_pod().container().init_container(restartPolicy="Never").build(),
     "spec.initContainers[0].restartPolicy", "FieldValueNotSupported",
     'Unsupported value: "Never": supported values: "Always"'),
    ("init-liveness-probe",
     make_pod().container().init_container(livenessProbe={"exec": {"command": ["x"]}}).build(),
     "spec.initContainers[0].livenessProbe", "FieldValueForbidden",
     "may not be set for init containers without restartPolicy=Always"),
    # --- pod enums ---
    ("restart-policy", ok().set_spec(restartPolicy="Sometimes").build(), "spec.restartPolicy",
     "FieldValueNotSupported",
     'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ("dns-policy", ok().set_spec(dnsPolicy="Google").build(), "spec.dnsPolicy",
     "FieldValueNotSupported",
     'supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'),
    ("preemption-policy", ok().set_spec(preemptionPolicy="Always").build(), "spec.preemptionPolicy",
     "FieldValueNotSupported", 'supported values: "PreemptLowerPriority", "Never"'),
    # --- ports ---
    ("port-protocol", make_pod().container(ports=[{"containerPort": 80, "protocol": "ICMP"}])
     .build(), "spec.containers[0].ports[0].protocol", "FieldValueNotSupported",
     'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
    ("container-port-missing", make_pod().container(ports=[{"name": "http"}]).build(),
     "spec.containers[0].ports[0].containerPort", "FieldValueRequired", "Required value"),
    ("container-port-range", make_pod().container(ports=[{"containerPort": 70000}]).build(),
     "spec.containers[0].ports[0].containerPort", "FieldValueInvalid",
     "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("host-port-range", make_pod().container(ports=[{"containerPort": 80, "hostPort": -1}])
     .build(), "spec.containers[0].ports[0].hostPort", "FieldValueInvalid",
     "Invalid value: -1: must be between 1 and 65535, inclusive"),
    ("port-name-charset", make_pod().container(ports=[{"containerPort": 80, "name": "HTTP"}])
     .build(), "spec.containers[0].ports[0].name", "FieldValueInvalid",
     "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
    ("port-name-letter", make_pod().container(ports=[{"containerPort": 80, "name": "8080"}])
     .build(), "spec.containers[0].ports[0].name", "FieldValueInvalid",
     'Invalid value: "8080": must contain at least one letter (a-z)'),
    ("port-name-too-long",
     make_pod().container(ports=[{"containerPort": 80, "name": "a-very-long-port-name"}]).build(),
     "spec.containers[0].ports[0].name", "FieldValueInvalid", "must be no more than 15 characters"),
    ("port-name-duplicate", make_pod().container(ports=[
        {"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]).build(),
     "spec.containers[0].ports[1].name", "FieldValueDuplicate", 'Duplicate value: "web"'),
    ("host-network-host-port", make_pod().container(ports=[{"containerPort": 80,
                                                             "hostPort": 8080}])
     .set_spec(hostNetwork=True).build(), "spec.containers[0].ports[0].hostPort",
     "FieldValueInvalid",
     "Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"),
    ("host-port-conflict", make_pod().container("a", ports=[{"containerPort": 80,
                                                              "hostPort": 80}])
     .container("b", ports=[{"containerPort": 81, "hostPort": 80}]).build(),
     "spec.containers[1].ports[0].hostPort", "FieldValueDuplicate", 'Duplicate value: "TCP//80"'),
    # --- resources ---
    ("request-above-limit", make_pod().container(resources={
        "limits": {"cpu": "1"}, "requests": {"cpu": "2"}}).build(),
     "spec.containers[0].resources.requests", "FieldValueInvalid",
     'Invalid value: "2": must be less than or equal to cpu limit of 1'),
    ("memory-request-above-limit", make_pod().container(resources={
        "limits": {"memory": "64Mi"}, "requests": {"memory": "128Mi"}}).build(),
     "spec.containers[0].resources.requests", "FieldValueInvalid",
     'Invalid value: "128Mi": must be less than or equal to memory limit of 64Mi'),
    ("negative-limit", make_pod().container(resources={"limits": {"cpu": "-1"}}).build(),
     "spec.containers[0].resources.limits[cpu]", "FieldValueInvalid",
     'Invalid value: "-1": must be greater than or equal to 0'),
    ("unknown-resource", make_pod().container(resources={"limits": {"foo": "1"}}).build(),
     "spec.containers[0].resources.limits[foo]", "FieldValueInvalid",
     "must be a standard resource type or fully qualified"),
    ("non-container-resource", make_pod().container(resources={"limits": {"pods": "1"}}).build(),
     "spec.containers[0].resources.limits[pods]", "FieldValueInvalid",
     "must be a standard resource for containers"),
    ("bad-quantity", make_pod().container(resources={"limits": {"cpu": "1xyz"}}).build(),
     "spec.containers[0].resources.limits[cpu]", "FieldValueInvalid",
     "quantities must match the regular expression"),
    ("extended-fraction", make_pod().container(resources={"limits": {"example.com/gpu": "500m"}})
     .build(), "spec.containers[0].resources.limits[example.com/gpu]", "FieldValueInvalid",
     "Invalid value: 500m: must be an integer"),
    ("hugepages-alone", make_pod().container(resources={"limits": {"hugepages-2Mi": "2Mi"}})
     .build(), "spec.containers[0].resources", "FieldValueForbidden",
     "HugePages require cpu or memory"),
    # --- env ---
    ("env-name-equals", make_pod().container(env=[{"name": "A=B", "value": "x"}]).build(),
     "spec.containers[0].env[0].name", "FieldValueInvalid",
     "a valid environment variable name must consist only of printable ASCII characters other "
     "than '='"),
    ("env-name-missing", make_pod().container(env=[{"value": "x"}]).build(),
     "spec.containers[0].env[0].name", "FieldValueRequired", "Required value"),
    ("env-value-from-empty", make_pod().container(env=[{"name": "A", "valueFrom": {}}]).build(),
     "spec.containers[0].env[0].valueFrom", "FieldValueInvalid",
     "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"),
    ("env-field-ref", make_pod().container(env=[{"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "spec.bogus"}}}]).build(),
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "FieldValueInvalid",
     "error converting fieldPath: field label not supported: spec.bogus"),
    ("env-field-ref-unsupported", make_pod().container(env=[{"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "status.phase"}}}]).build(),
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "FieldValueNotSupported",
     'Unsupported value: "status.phase"'),
    # --- volumes ---
    ("volume-name-invalid", ok().volume("Data", emptyDir={}).build(), "spec.volumes[0].name",
     "FieldValueInvalid", LABEL_MSG),
    ("volume-name-duplicate", ok().volume("d", emptyDir={}).volume("d", emptyDir={}).build(),
     "spec.volumes[1].name", "FieldValueDuplicate", 'Duplicate value: "d"'),
    ("volume-two-sources", ok().volume("d", emptyDir={}, hostPath={"path": "/x"}).build(),
     "spec.volumes[0].hostPath", "FieldValueForbidden",
     "Forbidden: may not specify more than 1 volume type"),
    ("host-path-missing", ok().volume("d", hostPath={}).build(), "spec.volumes[0].hostPath.path",
     "FieldValueRequired", "Required value"),
    ("host-path-type", ok().volume("d", hostPath={"path": "/x", "type": "Dir"}).build(),
     "spec.volumes[0].hostPath.type", "FieldValueNotSupported",
     'Unsupported value: "Dir": supported values: "", "BlockDevice", "CharDevice", "Directory", '
     '"DirectoryOrCreate", "File", "FileOrCreate", "Socket"'),
    ("host-path-backsteps", ok().volume("d", hostPath={"path": "/a/../etc"}).build(),
     "spec.volumes[0].hostPath.path", "FieldValueInvalid", "must not contain '..'"),
    ("empty-dir-negative", ok().volume("d", emptyDir={"sizeLimit": "-1Gi"}).build(),
     "spec.volumes[0].emptyDir.sizeLimit", "FieldValueForbidden",
     "SizeLimit field must be a valid resource quantity"),
    ("secret-name-missing", ok().volume("d", secret={}).build(),
     "spec.volumes[0].secret.secretName", "FieldValueRequired", "Required value"),
    ("config-map-mode", ok().volume("d", configMap={"name": "cm", "defaultMode": 0o1000}).build(),
     "spec.volumes[0].configMap.defaultMode", "FieldValueInvalid",
     "Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive"),
    ("pvc-claim-missing", ok().volume("d", persistentVolumeClaim={}).build(),
     "spec.volumes[0].persistentVolumeClaim.claimName", "FieldValueRequired", "Required value"),
    ("ephemeral-unsupported", ok().volume("d", ephemeral={"volumeClaimTemplate": {"spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}})
     .build(), "spec.volumes[0].ephemeral", "FieldValueForbidden",
     "Forbidden: generic ephemeral volumes are not supported by podling"),
    # --- volume mounts ---
    ("mount-not-found", make_pod().container(volumeMounts=[{"name": "data", "mountPath": "/d"}])
     .build(), "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound",
     'Not found: "data"'),
    ("mount-path-missing", make_pod().container(volumeMounts=[{"name": "d"}])
     .volume("d", emptyDir={}).build(), "spec.containers[0].volumeMounts[0].mountPath",
     "FieldValueRequired", "Required value"),
    ("mount-path-duplicate", make_pod().container(volumeMounts=[
        {"name": "d", "mountPath": "/x"}, {"name": "e", "mountPath": "/x"}])
     .volume("d", emptyDir={}).volume("e", emptyDir={}).build(),
     "spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid",
     'Invalid value: "/x": must be unique'),
    ("sub-path-absolute", make_pod().container(volumeMounts=[
        {"name": "d", "mountPath": "/x", "subPath": "/abs"}]).volume("d", emptyDir={}).build(),
     "spec.containers[0].volumeMounts.subPath", "FieldValueInvalid",
     'Invalid value: "/abs": must be a relative path'),
    ("sub-path-backsteps", make_pod().container(volumeMounts=[
        {"name": "d", "mountPath": "/x", "subPath": "a/../.."}]).volume("d", emptyDir={}).build(),
     "spec.containers[0].volumeMounts.subPath", "FieldValueInvalid", "must not contain '..'"),
    ("sub-path-and-expr", make_pod().container(volumeMounts=[
        {"name": "d", "mountPath": "/x", "subPath": "a", "subPathExpr": "$(POD)"}])
     .volume("d", emptyDir={}).build(), "spec.containers[0].volumeMounts[0].subPathExpr",
     "FieldValueInvalid", "subPathExpr and subPath are mutually exclusive"),
    ("bidirectional-unprivileged", make_pod().container(volumeMounts=[
        {"name": "d", "mountPath": "/x", "mountPropagation": "Bidirectional"}])
     .volume("d", emptyDir={}).build(), "spec.containers[0].volumeMounts.mountPropagation",
     "FieldValueForbidden", "Bidirectional mount propagation is available only to privileged"),
    # --- host namespaces and security ---
    ("share-pid-and-host-pid", ok().set_spec(shareProcessNamespace=True, hostPID=True).build(),
     "spec.securityContext.shareProcessNamespace", "FieldValueInvalid",
     "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled"),
    ("run-as-user-negative", ok().set_spec(securityContext={"runAsUser": -1}).build(),
     "spec.securityContext.runAsUser", "FieldValueInvalid",
     "Invalid value: -1: must be between 0 and 4294967295, inclusive"),
    ("container-run-as-group", make_pod().container(securityContext={"runAsGroup": 2**33})
     .build(), "spec.containers[0].securityContext.runAsGroup", "FieldValueInvalid",
     "must be between 0 and 4294967295, inclusive"),
    ("proc-mount-unmasked", make_pod().container(securityContext={"procMount": "Unmasked"})
     .build(), "spec.containers[0].securityContext.procMount", "FieldValueInvalid",
     "`hostUsers` must be false to use `Unmasked`"),
    ("seccomp-type", ok().set_spec(securityContext={"seccompProfile": {"type": "Strict"}}).build(),
     "spec.securityContext.seccompProfile.type", "FieldValueNotSupported",
     'supported values: "Localhost", "RuntimeDefault", "Unconfined"'),
    ("no-escalation-but-privileged", make_pod().container(securityContext={
        "allowPrivilegeEscalation": False, "privileged": True}).build(),
     "spec.containers[0].securityContext", "FieldValueInvalid",
     "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"),
    ("net-sysctl-host-network", ok().set_spec(hostNetwork=True, securityContext={
        "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}).build(),
     "spec.securityContext.sysctls[0].name", "FieldValueInvalid",
     "may not be specified when 'hostNetwork' is true"),
    ("host-users-false-host-pid", ok().set_spec(hostPID=True, securityContext={"hostUsers": False})
     .build(), "spec.HostPID", "FieldValueForbidden", "when `pod.Spec.HostUsers` is false"),
    # --- hostAliases, names ---
    ("host-alias-ip", ok().set_spec(hostAliases=[{"ip": "999.1.1.1", "hostnames": ["a"]}]).build(),
     "spec.hostAliases[0].ip", "FieldValueInvalid", 'Invalid value: "999.1.1.1": ' + IP_MSG),
    ("host-alias-hostname", ok().set_spec(hostAliases=[{"ip": "10.0.0.1", "hostnames": ["Bad_Host"]}])
     .build(), "spec.hostAliases[0].hostnames[0]", "FieldValueInvalid", SUBDOMAIN_MSG),
    ("node-name", ok().set_spec(nodeName="Node_1").build(), "spec.nodeName", "FieldValueInvalid",
     SUBDOMAIN_MSG),
    ("hostname", ok().set_spec(hostname="web.1").build(), "spec.hostname", "FieldValueInvalid",
     'Invalid value: "web.1": must not contain dots'),
    ("subdomain", ok().set_spec(subdomain="Sub").build(), "spec.subdomain", "FieldValueInvalid",
     LABEL_MSG),
    ("priority-class-name", ok().set_spec(priorityClassName="High_Prio").build(),
     "spec.priorityClassName", "FieldValueInvalid", SUBDOMAIN_MSG),
    ("node-selector-value", ok().set_spec(nodeSelector={"disk": "x" * 64}).build(),
     "spec.nodeSelector", "FieldValueInvalid", "must be no more than 63 characters"),
    ("node-selector-key", ok().set_spec(nodeSelector={"-disk": "ssd"}).build(), "spec.nodeSelector",
     "FieldValueInvalid", "name part must consist of alphanumeric characters, '-', '_' or '.'"),
    # --- tolerations and affinity ---
    ("toleration-operator", ok().set_spec(tolerations=[{"key": "k", "operator": "In"}]).build(),
     "spec.tolerations[0].operator", "FieldValueNotSupported",
     'Unsupported value: "In": supported values: "Equal", "Exists"'),
    ("toleration-exists-value", ok().set_spec(tolerations=[{"key": "k", "operator": "Exists",
                                                        "value": "v"}]).build(),
     "spec.tolerations[0].operator", "FieldValueInvalid",
     "value must be empty when `operator` is 'Exists'"),
    ("toleration-effect", ok().set_spec(tolerations=[{"key": "k", "effect": "NoRun"}]).build(),
     "spec.tolerations[0].effect", "FieldValueNotSupported",
     'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ("toleration-empty-key", ok().set_spec(tolerations=[{"operator": "Equal", "value": "v"}]).build(),
     "spec.tolerations[0].operator", "FieldValueInvalid",
     "operator must be Exists when `key` is empty"),
    ("toleration-seconds-effect", ok().set_spec(tolerations=[{
        "key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}])
     .build(), "spec.tolerations[0].effect", "FieldValueInvalid",
     "effect must be 'NoExecute' when `tolerationSeconds` is set"),
    ("node-affinity-no-terms", ok().set_spec(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}).build(),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
     "nodeSelectorTerms", "FieldValueRequired", "must have at least one node selector term"),
    ("node-affinity-operator", ok().set_spec(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "k", "operator": "Near", "values": ["a"]}]}]}}})
     .build(), "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
     "nodeSelectorTerms[0].matchExpressions[0].operator", "FieldValueInvalid",
     'Invalid value: "Near": not a valid selector operator'),
    ("preferred-weight", ok().set_spec(affinity={"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {}}]}})
     .build(), "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
     ".weight", "FieldValueInvalid", "Invalid value: 0: must be in the range 1-100"),
    ("pod-affinity-topology-key", ok().set_spec(affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {}}]}}).build(),
     "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
     "FieldValueRequired", "Required value: can not be empty"),
    ("scheduling-gate-duplicate", ok().set_spec(schedulingGates=[{"name": "a"}, {"name": "a"}])
     .build(), "spec.schedulingGates[1]", "FieldValueDuplicate", 'Duplicate value: "a"'),
    # --- numbers ---
    ("grace-missing", mutate(ok(), lambda p: p["spec"].pop("terminationGracePeriodSeconds")),
     "spec.terminationGracePeriodSeconds", "FieldValueRequired", "Required value"),
    ("active-deadline", ok().set_spec(activeDeadlineSeconds=0).build(), "spec.activeDeadlineSeconds",
     "FieldValueInvalid", "Invalid value: 0: must be between 1 and 2147483647, inclusive"),
    # --- hooks and probes ---
    ("post-start-no-handler", make_pod().container(lifecycle={"postStart": {}}).build(),
     "spec.containers[0].lifecycle.postStart", "FieldValueRequired",
     "Required value: must specify a handler type"),
    ("post-start-exec-command", make_pod().container(lifecycle={"postStart": {"exec": {}}})
     .build(), "spec.containers[0].lifecycle.postStart.exec.command", "FieldValueRequired",
     "Required value"),
    ("pre-stop-http-port", make_pod().container(lifecycle={"preStop": {"httpGet": {}}}).build(),
     "spec.containers[0].lifecycle.preStop.httpGet.port", "FieldValueInvalid",
     "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("two-handlers", make_pod().container(lifecycle={"preStop": {
        "exec": {"command": ["x"]}, "tcpSocket": {"port": 80}}}).build(),
     "spec.containers[0].lifecycle.preStop.tcpSocket", "FieldValueForbidden",
     "may not specify more than 1 handler type"),
    ("sleep-too-long", make_pod().container(lifecycle={"preStop": {"sleep": {"seconds": 60}}})
     .build(), "spec.containers[0].lifecycle.preStop.sleep", "FieldValueInvalid",
     "must be greater than 0 and less than terminationGracePeriodSeconds (30)"),
    ("probe-negative-period", make_pod().container(livenessProbe={
        "exec": {"command": ["x"]}, "periodSeconds": -1}).build(),
     "spec.containers[0].livenessProbe.periodSeconds", "FieldValueInvalid",
     "Invalid value: -1: must be greater than or equal to 0"),
    ("liveness-success-threshold", make_pod().container(livenessProbe={
        "exec": {"command": ["x"]}, "successThreshold": 2}).build(),
     "spec.containers[0].livenessProbe.successThreshold", "FieldValueInvalid",
     "Invalid value: 2: must be 1"),
    ("readiness-grace", make_pod().container(readinessProbe={
        "exec": {"command": ["x"]}, "terminationGracePeriodSeconds": 5}).build(),
     "spec.containers[0].readinessProbe.terminationGracePeriodSeconds", "FieldValueInvalid",
     "must not be set for readinessProbes"),
    ("probe-scheme", make_pod().container(readinessProbe={
        "httpGet": {"port": 80, "scheme": "FTP"}}).build(),
     "spec.containers[0].readinessProbe.httpGet.scheme", "FieldValueNotSupported",
     'Unsupported value: "FTP": supported values: "HTTP", "HTTPS"'),
    ("probe-named-port", make_pod().container(startupProbe={"tcpSocket": {"port": "Web"}}).build(),
     "spec.containers[0].startupProbe.tcpSocket.port", "FieldValueInvalid",
     "must contain only alpha-numeric characters"),
    # --- dns ---
    ("dns-none-without-config", ok().set_spec(dnsPolicy="None").build(), "spec.dnsConfig",
     "FieldValueRequired", "Required value: must provide `dnsConfig` when `dnsPolicy` is None"),
    ("dns-none-without-nameservers", ok().set_spec(dnsPolicy="None", dnsConfig={"searches": ["a"]})
     .build(), "spec.dnsConfig.nameservers", "FieldValueRequired",
     "must provide at least one DNS nameserver when `dnsPolicy` is None"),
    ("dns-nameserver-ip", ok().set_spec(dnsConfig={"nameservers": ["dns.local"]}).build(),
     "spec.dnsConfig.nameservers[0]", "FieldValueInvalid", IP_MSG),
    ("dns-too-many-nameservers", ok().set_spec(dnsConfig={"nameservers": [
        "1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1"]}).build(), "spec.dnsConfig.nameservers",
     "FieldValueInvalid", "must not have more than 3 nameservers"),
    # --- metadata ---
    ("name-missing", mutate(ok(), lambda p: p["metadata"].pop("name")), "metadata.name",
     "FieldValueRequired", "Required value: name or generateName is required"),
    ("name-invalid", make_pod("My_Pod").container().build(), "metadata.name",
     "FieldValueInvalid", 'Invalid value: "My_Pod": ' + SUBDOMAIN_MSG),
    ("generate-name-invalid", mutate(ok().set_meta(generateName="Web_"), lambda p: None),
     "metadata.generateName", "FieldValueInvalid", SUBDOMAIN_MSG),
    ("namespace-missing", mutate(ok(), lambda p: p["metadata"].pop("namespace")),
     "metadata.namespace", "FieldValueRequired", "Required value"),
    ("namespace-invalid", ok().set_meta(namespace="Bad_NS").build(), "metadata.namespace",
     "FieldValueInvalid", LABEL_MSG),
    ("label-value", ok().set_meta(labels={"app": "-web"}).build(), "metadata.labels",
     "FieldValueInvalid", "a valid label must be an empty string or consist of alphanumeric"),
    ("label-key-prefix", ok().set_meta(labels={"Example.com/app": "web"}).build(), "metadata.labels",
     "FieldValueInvalid", "prefix part " + SUBDOMAIN_MSG),
    ("annotation-key", ok().set_meta(annotations={"a/b/c": "x"}).build(), "metadata.annotations",
     "FieldValueInvalid", "a qualified name must consist of alphanumeric characters"),
    ("annotations-too-big", ok().set_meta(annotations={"big": "x" * (256 * 1024)}).build(),
     "metadata.annotations", "FieldValueTooLong", "Too long: may not be more than 262144 bytes"),
    ("finalizer-not-standard", ok().set_meta(finalizers=["cleanup"]).build(),
     "metadata.finalizers[0]", "FieldValueInvalid",
     'Invalid value: "cleanup": name is neither a standard finalizer name nor is it fully '
     "qualified"),
    ("owner-reference-uid", ok().set_meta(ownerReferences=[{"apiVersion": "v1", "kind": "Node",
                                                        "name": "n"}]).build(),
     "metadata.ownerReferences.uid", "FieldValueInvalid", 'Invalid value: "": must not be empty'),
    ("deletion-cost", ok().set_meta(annotations={"controller.kubernetes.io/pod-deletion-cost": "x"})
     .build(), "metadata.annotations[controller.kubernetes.io/pod-deletion-cost]",
     "FieldValueInvalid", 'Invalid value: "x": must be a 32bit integer'),
    # --- create-only rules ---
    ("ephemeral-on-create", ok().set_spec(ephemeralContainers=[{"name": "dbg", "image": "busybox"}])
     .build(), "spec.ephemeralContainers", "FieldValueForbidden", "cannot be set on create"),
    ("node-name-with-gates", ok().set_spec(nodeName="n1", schedulingGates=[{"name": "wait"}]).build(),
     "spec.nodeName", "FieldValueForbidden",
     "cannot be set until all schedulingGates have been cleared"),
    ("readiness-gate", ok().set_spec(readinessGates=[{"conditionType": "bad/cond/x"}]).build(),
     "spec.readinessGates[0].conditionType", "FieldValueInvalid", "a qualified name must"),
]


def _describe(causes: list[Cause]) -> str:
    return "\n".join(f"  {c.field} [{c.reason}] {c.message}" for c in causes)


@pytest.mark.parametrize("pod,field,reason,message", [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_pod(pod: Pod, field: str, reason: str, message: str) -> None:
    causes = validate_pod(pod)
    matching = [c for c in causes if c.field == field and c.reason == reason
                and message in c.message]
    assert matching, f"expected {field} [{reason}] ~ {message!r}; got:\n{_describe(causes)}"


def test_table_is_large_and_ids_unique() -> None:
    ids = [c[0] for c in INVALID]
    assert len(ids) >= 60
    assert len(set(ids)) == len(ids)


def test_exact_rendering_of_common_causes() -> None:
    dup = validate_pod(make_pod().container("a").container("a").build())
    assert [str(c) for c in dup] == ['spec.containers[1].name: Duplicate value: "a"']
    missing = validate_pod(make_pod().container("c", image="").build())
    assert [str(c) for c in missing] == ["spec.containers[0].image: Required value"]
    none = validate_pod(make_pod().build())
    assert [str(c) for c in none] == ["spec.containers: Required value"]
    mount = validate_pod(make_pod().container(volumeMounts=[{"name": "data",
                                                             "mountPath": "/d"}]).build())
    assert [c.as_dict() for c in mount] == [{
        "reason": "FieldValueNotFound", "message": 'Not found: "data"',
        "field": "spec.containers[0].volumeMounts[0].name"}]


def test_causes_come_in_kubernetes_order() -> None:
    pod = make_pod("Bad_Name").container("A", image="").set_spec(restartPolicy="x").build()
    fields = [c.field for c in validate_pod(pod)]
    assert fields == ["metadata.name", "spec.containers[0].name", "spec.containers[0].image",
                      "spec.restartPolicy"]


def test_invalid_volume_is_not_mountable() -> None:
    pod = (make_pod().container(volumeMounts=[{"name": "d", "mountPath": "/x"}])
           .volume("d", hostPath={}).build())
    fields = [c.field for c in validate_pod(pod)]
    assert fields == ["spec.volumes[0].hostPath.path", "spec.containers[0].volumeMounts[0].name"]


def test_garbage_shapes_never_raise() -> None:
    for spec in ({"containers": "nope"}, {"containers": [None, 3]}, {"volumes": {"a": 1}},
                 {"containers": [{"ports": "x", "env": [1], "resources": []}]}, None, 5):
        validate_pod({"metadata": "x", "spec": spec})
    validate_pod({})


# --- valid pods -----------------------------------------------------------------------

VALID: list[tuple[str, Pod]] = [
    ("minimal", ok().build()),
    ("node-selector", make_pod("selector").container("nginx", image="nginx:1.25")
     .set_spec(nodeSelector={"disktype": "ssd", "kubernetes.io/hostname": "node-1"}).build()),
    ("node-name", make_pod("pinned").container("nginx").set_spec(nodeName="node-1").build()),
    ("host-aliases", make_pod("aliases").container("cat-hosts", image="busybox",
                                                   command=["cat", "/etc/hosts"])
     .set_spec(restartPolicy="Never", hostAliases=[
         {"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
         {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]},
         {"ip": "2001:db8::1", "hostnames": ["v6.remote"]}]).build()),
    ("share-process-namespace", make_pod("nginx").container("nginx")
     .container("shell", image="busybox:1.28", command=["sleep", "3600"],
                securityContext={"capabilities": {"add": ["SYS_PTRACE"]}}, stdin=True, tty=True)
     .set_spec(shareProcessNamespace=True).build()),
    ("host-namespaces-and-hooks", make_pod("hostns").container(
        "lifecycle-demo", image="nginx", ports=[{"containerPort": 80}],
        lifecycle={"postStart": {"exec": {"command": ["/bin/sh", "-c",
                                                      "echo hello > /usr/share/message"]}},
                   "preStop": {"exec": {"command": ["/bin/sh", "-c", "nginx -s quit"]}}})
     .set_spec(hostPID=True, hostIPC=True, hostNetwork=True).build()),
    ("http-hooks-and-probes", make_pod().container(
        ports=[{"name": "http", "containerPort": 8080}],
        lifecycle={"preStop": {"httpGet": {"port": "http", "path": "/quit"}},
                   "postStart": {"sleep": {"seconds": 5}}},
        livenessProbe={"httpGet": {"port": 8080}}, readinessProbe={"tcpSocket": {"port": "http"}},
        startupProbe={"grpc": {"port": 9000}}).build()),
    ("volumes-and-mounts", make_pod().container(volumeMounts=[
        {"name": "data", "mountPath": "/data", "subPath": "sub"},
        {"name": "host", "mountPath": "/host", "readOnly": True},
        {"name": "cfg", "mountPath": "/cfg"}, {"name": "scratch", "mountPath": "/scratch"}])
     .volume("data", emptyDir={"medium": "Memory", "sizeLimit": "64Mi"})
     .volume("host", hostPath={"path": "/var/log", "type": "Directory"})
     .volume("cfg", configMap={"name": "cfg", "items": [{"key": "a", "path": "a.conf"}]})
     .volume("scratch").build()),
    ("resources", make_pod().container(resources={
        "limits": {"cpu": "500m", "memory": "128Mi", "example.com/gpu": "1"},
        "requests": {"cpu": "0.25", "memory": "64Mi"}}).build()),
    ("env", make_pod().container(env=[
        {"name": "MY.VAR-1", "value": "x"}, {"name": "1LEADING_DIGIT", "value": "ok in 1.32"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "LBL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
        envFrom=[{"secretRef": {"name": "s"}, "prefix": "S_"}]).build()),
    ("sidecar", make_pod().container().init_container(
        "log", restartPolicy="Always", readinessProbe={"exec": {"command": ["true"]}},
        lifecycle={"preStop": LIFECYCLE_EXEC}).build()),
    ("tolerations-affinity", ok().set_spec(
        tolerations=[{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
                     {"operator": "Exists"},
                     {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                      "effect": "NoExecute", "tolerationSeconds": 300}],
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "disk", "operator": "In", "values": ["ssd"]}]}]}},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname"}}]}}).build()),
    ("dns", ok().set_spec(dnsPolicy="None", hostname="web-0", subdomain="svc", dnsConfig={
        "nameservers": ["1.1.1.1"], "searches": ["ns.svc.cluster.local."],
        "options": [{"name": "ndots", "value": "2"}]}).build()),
    ("metadata", ok().set_meta(labels={"app": "web", "example.com/tier": ""},
                           annotations={"Example.com/Note": "hi"},
                           finalizers=["example.com/cleanup", "foregroundDeletion"],
                           generateName="web-").build()),
    ("security", ok().set_spec(securityContext={"runAsUser": 1000, "runAsGroup": 0,
                                            "fsGroup": 2000, "seccompProfile": {
                                                "type": "RuntimeDefault"}},
                           activeDeadlineSeconds=60, priorityClassName="high",
                           preemptionPolicy="Never").build()),
]


@pytest.mark.parametrize("pod", [v[1] for v in VALID], ids=[v[0] for v in VALID])
def test_valid_pod(pod: Pod) -> None:
    causes = validate_pod(pod)
    assert causes == [], _describe(causes)

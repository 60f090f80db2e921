"""Human text for the OpenAPI documents: query-parameter help and schema descriptions.

All text here is written for podling (``kubectl explain`` shows it). Types and fields without
an entry simply have no description; kubectl renders them fine.
"""

from __future__ import annotations

# name -> (JSON type, description)
PARAMETERS: dict[str, tuple[str, str]] = {
    "name": ("string", "Name of the object."),
    "namespace": ("string", "Namespace of the object."),
    "pretty": ("string", "Accepted for compatibility; podling always answers compact JSON."),
    "allowWatchBookmarks": ("boolean", "Let a watch send BOOKMARK events carrying only a "
                            "resourceVersion."),
    "continue": ("string", "Continue token from a previous paginated list."),
    "fieldSelector": ("string", "Restrict results by field, e.g. spec.nodeName=n1."),
    "labelSelector": ("string", "Restrict results by label, e.g. app=web,tier!=db."),
    "limit": ("integer", "Maximum number of items in one list answer."),
    "resourceVersion": ("string", "List or watch from this resourceVersion."),
    "resourceVersionMatch": ("string", "How resourceVersion applies to a list: Exact or "
                             "NotOlderThan."),
    "sendInitialEvents": ("boolean", "Start a watch with synthetic events for existing "
                          "objects."),
    "timeoutSeconds": ("integer", "End a list or watch call after this many seconds."),
    "watch": ("boolean", "Stream add, update and delete events instead of listing."),
    "dryRun": ("string", "All: validate and answer without storing anything."),
    "fieldManager": ("string", "Name of the actor making the change, recorded in "
                     "managedFields."),
    "fieldValidation": ("string", "What to do with unknown or duplicate fields: Strict "
                        "rejects the request, Warn accepts it with a warning per field, "
                        "Ignore drops them silently."),
    "force": ("boolean", "Server-side apply: take ownership of conflicting fields."),
    "gracePeriodSeconds": ("integer", "Seconds to wait before the object is removed; 0 means "
                           "immediately."),
    "propagationPolicy": ("string", "Orphan, Background or Foreground deletion of "
                          "dependents."),
    "container": ("string", "The container to read from or connect to; optional for "
                  "one-container pods."),
    "command": ("string", "The command to run in the container, one parameter per argument."),
    "stdin": ("boolean", "Pass the client's standard input to the process."),
    "stdout": ("boolean", "Return the process's standard output."),
    "stderr": ("boolean", "Return the process's standard error (not with tty)."),
    "tty": ("boolean", "Allocate a terminal; stderr is then part of stdout."),
    "ports": ("integer", "The pod ports to forward (the Python client's WebSocket protocol)."),
    "follow": ("boolean", "Keep the stream open and send new log lines as they arrive."),
    "insecureSkipTLSVerifyBackend": ("boolean", "Accepted for compatibility."),
    "limitBytes": ("integer", "Stop after this many bytes of log."),
    "previous": ("boolean", "Read the log of the previous, terminated instance."),
    "sinceSeconds": ("integer", "Only log lines newer than this many seconds."),
    "sinceTime": ("string", "Only log lines from this RFC 3339 time on."),
    "tailLines": ("integer", "Only the last this many lines of the log."),
    "timestamps": ("boolean", "Prefix every line with an RFC 3339 timestamp."),
}

_TEXT: dict[str, str] = {
    # kinds
    "Pod": "A Pod is a group of containers that share a network, IPC and UTS namespace and "
           "volumes, scheduled together onto one node. podling runs it in a pause sandbox.",
    "PodList": "A list of Pods.",
    "Node": "A Node is a machine that runs pods: one podling agent.",
    "NodeList": "A list of Nodes.",
    "Namespace": "A Namespace scopes the names of the objects in it.",
    "NamespaceList": "A list of Namespaces.",
    "ConfigMap": "A ConfigMap holds configuration data for pods: text in data, bytes in "
                 "binaryData; at most 1 MiB altogether.",
    "ConfigMapList": "A list of ConfigMaps.",
    "ConfigMap.data": "Text values by key. Keys consist of alphanumeric characters, '-', '_' "
                      "or '.', and none may also be in binaryData.",
    "ConfigMap.binaryData": "Byte values by key, base64 on the wire.",
    "ConfigMap.immutable": "Once true, data and binaryData can no longer change and immutable "
                           "cannot be unset.",
    "Secret": "A Secret holds sensitive data of a given type, at most 1 MiB.",
    "SecretList": "A list of Secrets.",
    "Secret.data": "Byte values by key, base64 on the wire.",
    "Secret.stringData": "Write-only text values, merged into data on write (they win over "
                         "data's); never returned.",
    "Secret.type": "Opaque (the default), or a built-in type such as kubernetes.io/tls that "
                   "requires certain keys. Cannot change.",
    "Secret.immutable": "Once true, data can no longer change and immutable cannot be unset.",
    "Event": "An Event reports something that happened to an object, such as an image pull "
             "or a container start.",
    "EventList": "A list of Events.",
    "Binding": "A Binding assigns a pod to a node; the scheduler creates it.",
    "Lease": "A Lease is a short-lived claim; agents renew one per node as a heartbeat.",
    "LeaseList": "A list of Leases.",
    "SelfSubjectAccessReview": "Asks whether the caller may perform an action.",
    "Status": "The result of an operation that does not return an object, usually an error.",
    "DeleteOptions": "Options for a delete request.",
    "Eviction": "An Eviction asks for a pod to be removed from its node.",
    "Patch": "A patch document; its format is given by the request Content-Type.",
    "Quantity": "An amount such as 100m, 1.5, 512Mi or 2G: a decimal number with an optional "
                "SI or binary suffix. JSON numbers are accepted too.",
    "IntOrString": "Either an integer or a string, e.g. a port number or a port name.",
    "FieldsV1": "The set of fields a manager owns, in server-side apply's trie format.",
    # shared structure
    "ObjectMeta": "Metadata every persisted object has: name, namespace, labels, ...",
    "ObjectMeta.name": "Name, unique within the namespace (and kind). Cannot be changed.",
    "ObjectMeta.namespace": "Namespace of the object; empty for cluster-scoped objects.",
    "ObjectMeta.labels": "Key/value pairs used to select objects.",
    "ObjectMeta.annotations": "Key/value pairs for tools; not used for selection.",
    "ObjectMeta.uid": "Unique id set by the server on creation.",
    "ObjectMeta.resourceVersion": "Opaque version of the object, changed on every write; "
                                  "used for optimistic concurrency and watches.",
    "ObjectMeta.creationTimestamp": "When the object was created (set by the server).",
    "ObjectMeta.deletionTimestamp": "When graceful deletion was requested (set by the "
                                    "server).",
    "ObjectMeta.finalizers": "Keys that must be removed before the object is deleted.",
    "Pod.spec": "What the pod should run and how.",
    "Pod.status": "What the node reports about the pod; written by the agent.",
    "Pod.metadata": "Standard object metadata.",
    "Node.spec": "How the node may be used for scheduling.",
    "Node.status": "What the agent reports about the node.",
    # PodSpec
    "PodSpec": "The desired behaviour of a pod.",
    "PodSpec.containers": "The containers of the pod; at least one. They start after every "
                          "init container has succeeded.",
    "PodSpec.initContainers": "Containers that run one at a time, to completion, before the "
                              "app containers start.",
    "PodSpec.nodeName": "Run on this node, bypassing the scheduler.",
    "PodSpec.nodeSelector": "Labels a node must have for the pod to be scheduled onto it.",
    "PodSpec.hostAliases": "Extra entries the agent writes into the pod's /etc/hosts.",
    "PodSpec.hostname": "Hostname of the pod; defaults to the pod name.",
    "PodSpec.subdomain": "With hostname, makes the pod's FQDN <hostname>.<subdomain>."
                         "<namespace>.svc.<cluster domain>.",
    "PodSpec.hostNetwork": "Use the node's network namespace instead of the sandbox's.",
    "PodSpec.hostPID": "Use the node's PID namespace.",
    "PodSpec.hostIPC": "Use the node's IPC namespace.",
    "PodSpec.shareProcessNamespace": "Put all containers of the pod in one PID namespace.",
    "PodSpec.restartPolicy": "Always, OnFailure or Never: when to restart exited "
                             "containers. Default Always.",
    "PodSpec.terminationGracePeriodSeconds": "Seconds between SIGTERM and SIGKILL when the "
                                             "pod is stopped. Default 30.",
    "PodSpec.activeDeadlineSeconds": "Fail the pod after it has been active this long.",
    "PodSpec.dnsPolicy": "How /etc/resolv.conf is built: ClusterFirst, Default, None or "
                         "ClusterFirstWithHostNet.",
    "PodSpec.volumes": "Volumes the containers can mount. podling implements emptyDir and "
                       "hostPath.",
    "PodSpec.tolerations": "Taints this pod tolerates.",
    "PodSpec.affinity": "Scheduling constraints; podling implements nodeAffinity.",
    "PodSpec.securityContext": "Security settings for every container of the pod.",
    "PodSpec.schedulerName": "Scheduler responsible for the pod.",
    "HostAlias": "One /etc/hosts line: an IP address and its hostnames.",
    "HostAlias.ip": "IP address of the entry.",
    "HostAlias.hostnames": "Hostnames for the IP address.",
    # Container
    "Container": "One container of a pod.",
    "Container.name": "Name, unique within the pod (DNS label).",
    "Container.image": "Image reference, e.g. docker.io/library/nginx:1.27.",
    "Container.imagePullPolicy": "Always, IfNotPresent or Never. Defaults to Always for "
                                 ":latest and untagged images, IfNotPresent otherwise.",
    "Container.command": "Replaces the image's ENTRYPOINT. $(VAR) references are expanded.",
    "Container.args": "Replaces the image's CMD. $(VAR) references are expanded.",
    "Container.workingDir": "Working directory; defaults to the image's.",
    "Container.env": "Environment variables to set.",
    "Container.ports": "Ports the container listens on (informational; hostPort is "
                       "published).",
    "Container.resources": "CPU and memory requests and limits.",
    "Container.volumeMounts": "Volumes to mount into the container's filesystem.",
    "Container.livenessProbe": "Restart the container when this probe fails.",
    "Container.readinessProbe": "Mark the container unready while this probe fails.",
    "Container.startupProbe": "Hold the other probes until this one succeeds.",
    "Container.lifecycle": "postStart and preStop hooks.",
    "Container.securityContext": "Security settings for this container.",
    "Container.stdin": "Keep a stdin stream open for attach.",
    "Container.tty": "Allocate a terminal; needs stdin.",
    "ContainerPort": "A port the container listens on.",
    "ContainerPort.containerPort": "Port number inside the pod's network namespace.",
    "ContainerPort.hostPort": "Port on the node that forwards to containerPort.",
    "ContainerPort.protocol": "TCP, UDP or SCTP. Default TCP.",
    "EnvVar": "One environment variable.",
    "EnvVar.name": "Variable name.",
    "EnvVar.value": "Value; $(VAR) references to earlier variables are expanded.",
    "EnvVar.valueFrom": "Take the value from a field of the pod or a resource of the "
                        "container.",
    "VolumeMount": "Where to mount a volume in a container.",
    "VolumeMount.name": "Name of the pod volume.",
    "VolumeMount.mountPath": "Path inside the container.",
    "VolumeMount.readOnly": "Mount read-only.",
    "Volume": "A named volume the pod's containers can mount.",
    "ResourceRequirements": "Compute resources: requests (guaranteed) and limits (maximum).",
    "Probe": "A health check: exec, httpGet, tcpSocket or grpc, with timing.",
    "Lifecycle": "Handlers run right after a container starts and before it stops.",
    "PodStatus": "Observed state of a pod.",
    "PodStatus.phase": "Pending, Running, Succeeded, Failed or Unknown.",
    "PodStatus.conditions": "PodScheduled, Initialized, ContainersReady and Ready.",
    "ContainerStatus": "Observed state of one container.",
}


def describe(key: str) -> str:
    """The description for ``Type`` or ``Type.field`` (short type names), or ``""``."""
    return _TEXT.get(key, "")

"""configMap, secret, downwardAPI volumes and emptyDir sizeLimit on the real agent, seen
through the real kubectl: items and modes, the kubelet's file layout, updates in place (and
not through a subPath), the FailedMount message of a missing ConfigMap and the start once it
exists, a labels file that follows `kubectl label`, eviction of a pod over its emptyDir
limit, and the refusal of generic ephemeral volumes.

Updates reach a running pod at its next sync (every ~30 s) once the agent's object cache
(10 s) has expired: the waits allow 75 s.
"""

from __future__ import annotations

import json

from manifests import busybox, pod
from podcheck import apply, events, pod_json, running, sh, status_column, unique

UPDATE_WAIT = 75









def cleanup(cluster, *things: str) -> None:
    for thing in things:
        cluster.kubectl("delete", thing, "--wait=false", "--ignore-not-found", check=False)


def test_config_map_and_secret_volumes(cluster, wait) -> None:
    name, cm, sec = unique("vols"), unique("cm"), unique("sec")
    cluster.kubectl("create", "configmap", cm, "--from-literal=app.conf=v1",
                    "--from-literal=unused=x")
    cluster.kubectl("create", "secret", "generic", sec, "--from-literal=user=admin",
                    "--from-literal=pass=s3cr3t")
    apply(cluster, pod(name, cluster.node, [busybox("c", "sleep 3600", volumeMounts=[
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "cfg", "mountPath": "/pinned.conf", "subPath": "conf/app.conf"},
        {"name": "sec", "mountPath": "/etc/sec"}])], volumes=[
        {"name": "cfg", "configMap": {"name": cm, "items": [
            {"key": "app.conf", "path": "conf/app.conf", "mode": 0o440}]}},
        {"name": "sec", "secret": {"secretName": sec, "defaultMode": 0o400}}]))
    try:
        wait(lambda: running(cluster, name), timeout=90)
        assert sh(cluster, name, "cat /etc/cfg/conf/app.conf /pinned.conf") == "v1v1"
        assert sh(cluster, name, "stat -L -c %a /etc/cfg/conf/app.conf").strip() == "440"
        listing = sh(cluster, name, "ls -a /etc/cfg").split()
        assert "..data" in listing and "conf" in listing and "unused" not in listing
        assert sh(cluster, name, "readlink /etc/cfg/conf").strip() == "..data/conf"
        assert sh(cluster, name, "cat /etc/sec/user; echo; cat /etc/sec/pass") == \
            "admin\ns3cr3t"
        assert sh(cluster, name, "stat -L -c %a /etc/sec/user /etc/sec/pass").split() == \
            ["400", "400"]
        mounts = sh(cluster, name, "grep ' /etc/sec ' /proc/mounts")
        assert mounts.split()[2] == "tmpfs" and mounts.split()[3].startswith("ro")
        assert "Read-only file system" in cluster.kubectl(
            "exec", name, "--", "touch", "/etc/cfg/new", check=False).stderr
        updated = cluster.kubectl("create", "configmap", cm, "--from-literal=app.conf=v2",
                                  "-o", "yaml", "--dry-run=client").stdout
        cluster.kubectl("replace", "-f", "-", input=updated)
        wait(lambda: sh(cluster, name, "cat /etc/cfg/conf/app.conf") == "v2",
             timeout=UPDATE_WAIT)
        assert sh(cluster, name, "cat /pinned.conf") == "v1"  # a subPath does not change
        assert sh(cluster, name, "stat -L -c %a /etc/cfg/conf/app.conf").strip() == "440"
    finally:
        cleanup(cluster, f"pod/{name}", f"configmap/{cm}", f"secret/{sec}")


def test_missing_config_map_then_created(cluster, wait) -> None:
    name, cm = unique("waits"), unique("late")
    apply(cluster, pod(name, cluster.node, [busybox(
        "c", "sleep 3600", volumeMounts=[{"name": "config", "mountPath": "/etc/late"}])],
        volumes=[{"name": "config", "configMap": {"name": cm}}]))
    message = f'MountVolume.SetUp failed for volume "config" : configmap "{cm}" not found'
    try:
        wait(lambda: ("Warning", "FailedMount", message) in events(cluster, name), timeout=60)
        assert status_column(cluster, name) == "ContainerCreating"
        assert pod_json(cluster, name)["status"]["phase"] == "Pending"
        cluster.kubectl("create", "configmap", cm, "--from-literal=greeting=hello")
        wait(lambda: running(cluster, name), timeout=UPDATE_WAIT)
        assert sh(cluster, name, "cat /etc/late/greeting") == "hello"
    finally:
        cleanup(cluster, f"pod/{name}", f"configmap/{cm}")


def test_missing_key_message(cluster, wait) -> None:
    name, cm = unique("nokey"), unique("cm")
    cluster.kubectl("create", "configmap", cm, "--from-literal=present=1")
    apply(cluster, pod(name, cluster.node, [busybox(
        "c", "sleep 3600", volumeMounts=[{"name": "config", "mountPath": "/etc/x"}])],
        volumes=[{"name": "config", "configMap": {"name": cm, "items": [
            {"key": "absent", "path": "a"}]}}]))
    message = ('MountVolume.SetUp failed for volume "config" : '
               'configmap references non-existent config key: absent')
    try:
        wait(lambda: ("Warning", "FailedMount", message) in events(cluster, name), timeout=60)
        assert status_column(cluster, name) == "ContainerCreating"
    finally:
        cleanup(cluster, f"pod/{name}", f"configmap/{cm}")


def test_downward_api_labels_follow_kubectl_label(cluster, wait) -> None:
    name = unique("labels")
    manifest = pod(name, cluster.node, [busybox(
        "c", "sleep 3600", volumeMounts=[{"name": "info", "mountPath": "/etc/podinfo"}])],
        volumes=[{"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}])
    manifest["metadata"]["labels"] = {"app": "demo"}
    apply(cluster, manifest)
    try:
        wait(lambda: running(cluster, name), timeout=90)
        assert sh(cluster, name, "cat /etc/podinfo/labels") == 'app="demo"'
        assert sh(cluster, name, "cat /etc/podinfo/name") == name
        cluster.kubectl("label", "pod", name, "tier=db")
        wait(lambda: sh(cluster, name, "cat /etc/podinfo/labels") == 'app="demo"\ntier="db"',
             timeout=UPDATE_WAIT)
    finally:
        cleanup(cluster, f"pod/{name}")


def test_empty_dir_over_its_size_limit_evicts_the_pod(cluster, wait) -> None:
    name = unique("evict")
    apply(cluster, pod(name, cluster.node, [busybox(
        "c", "dd if=/dev/zero of=/scratch/big bs=1024 count=2048 && sleep 3600",
        volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}])],
        volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]))
    message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
    try:
        wait(lambda: pod_json(cluster, name)["status"].get("phase") == "Failed", timeout=90)
        status = pod_json(cluster, name)["status"]
        assert (status["reason"], status["message"]) == ("Evicted", message)
        assert ("Warning", "Evicted", message) in events(cluster, name)
        wait(lambda: "terminated" in (pod_json(cluster, name)["status"]
                                      ["containerStatuses"][0].get("state") or {}),
             timeout=30)  # killed (then STATUS shows the container's reason, as kubectl does)
    finally:
        cleanup(cluster, f"pod/{name}")


def test_generic_ephemeral_volume_is_refused(cluster) -> None:
    name = unique("eph")
    manifest = pod(name, cluster.node, [busybox("c", "true")], volumes=[
        {"name": "data", "ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}])
    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert f'The Pod "{name}" is invalid: spec.volumes[0].ephemeral: Forbidden: generic ' \
           "ephemeral volumes are not supported by podling" in result.stderr
    assert cluster.kubectl("get", "pod", name, check=False).returncode != 0


def test_projected_volume_with_every_source_but_a_token(cluster, wait) -> None:
    name, cm, sec = unique("proj"), unique("cm"), unique("sec")
    cluster.kubectl("create", "configmap", cm, "--from-literal=ca.crt=PEM")
    cluster.kubectl("create", "secret", "generic", sec, "--from-literal=key=hidden")
    apply(cluster, pod(name, cluster.node, [busybox(
        "c", "sleep 3600", volumeMounts=[{"name": "all", "mountPath": "/etc/all"}])],
        volumes=[{"name": "all", "projected": {"defaultMode": 0o440, "sources": [
            {"configMap": {"name": cm, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"secret": {"name": sec, "items": [{"key": "key", "path": "s/key",
                                                "mode": 0o400}]}},
            {"secret": {"name": unique("absent"), "optional": True}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}]))
    try:
        wait(lambda: running(cluster, name), timeout=90)
        assert sh(cluster, name, "cat /etc/all/ca.crt /etc/all/s/key /etc/all/namespace") == \
            "PEMhiddendefault"
        assert sh(cluster, name, "stat -L -c %a /etc/all/ca.crt /etc/all/s/key "
                                 "/etc/all/namespace").split() == ["440", "400", "440"]
        assert sh(cluster, name, "grep ' /etc/all ' /proc/mounts").split()[2] == "tmpfs"
    finally:
        cleanup(cluster, f"pod/{name}", f"configmap/{cm}", f"secret/{sec}")

"""A process in a pod calls the API server with the token the ServiceAccount admission
mounted: it reads discovery, is refused (403) a list of Secrets and its own pod until a Role
bound to its account allows that get, and finds the cluster's CA
and its namespace beside the token; with ``automountServiceAccountToken: false`` the
directory is absent. The pod uses the host network, so the server on 127.0.0.1 is reachable
(podling has no Services: there is no in-cluster address for the API server yet).
"""

from __future__ import annotations

import json
import urllib.parse

from manifests import busybox, pod
from podcheck import running, unique

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"




def sh(cluster, name: str, script: str) -> tuple[int, str]:
    out = cluster.kubectl("exec", name, "--", "sh", "-c", script + " 2>&1", check=False)
    return out.returncode, out.stdout


def wget_script(url: str) -> str:
    return (f'wget -q -O - --no-check-certificate '
            f'--header "Authorization: Bearer $(cat {SA_DIR}/token)" {url}')


def test_pod_calls_the_api_server_with_its_mounted_token(cluster, wait) -> None:
    name = unique("sa-call")
    cluster.apply(json.dumps(pod(name, cluster.node, [busybox("c", "sleep 3600")],
                                 hostNetwork=True)))
    try:
        wait(lambda: running(cluster, name), timeout=90)
        base = cluster.server.url
        host_port = urllib.parse.urlsplit(base).netloc
        code, out = sh(cluster, name, wget_script(f"https://{host_port}/api"))
        assert code == 0, out
        assert json.loads(out)["kind"] == "APIVersions"
        code, out = sh(cluster, name, wget_script(
            f"https://{host_port}/api/v1/namespaces/default/secrets"))
        assert code != 0 and "403 Forbidden" in out, out
        own = f"https://{host_port}/api/v1/namespaces/default/pods/{name}"
        code, out = sh(cluster, name, wget_script(own))
        assert code != 0 and "403 Forbidden" in out, out  # RBAC: nothing bound to it yet
        cluster.kubectl("create", "role", name, "--verb=get", "--resource=pods",
                        f"--resource-name={name}")
        cluster.kubectl("create", "rolebinding", name, f"--role={name}",
                        "--serviceaccount=default:default")
        code, out = sh(cluster, name, wget_script(own))
        assert code == 0 and json.loads(out)["metadata"]["name"] == name, out
        code, ca = sh(cluster, name, f"cat {SA_DIR}/ca.crt")
        with open(cluster.server.ca_file) as f:
            assert (code, ca) == (0, f.read())
        assert sh(cluster, name, f"cat {SA_DIR}/namespace") == (0, "default")
        whoami = cluster.kubectl("auth", "whoami", "-o", "json",
                                 f"--token={sh(cluster, name, f'cat {SA_DIR}/token')[1]}")
        assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == \
            "system:serviceaccount:default:default"
    finally:
        cluster.kubectl("delete", "pod", name, "--wait=false", check=False)
        cluster.kubectl("delete", "role,rolebinding", name, "--ignore-not-found", check=False)


def test_without_automount_the_directory_is_absent(cluster, wait) -> None:
    name = unique("sa-none")
    cluster.apply(json.dumps(pod(name, cluster.node, [busybox("c", "sleep 3600")],
                                 automountServiceAccountToken=False)))
    try:
        wait(lambda: running(cluster, name), timeout=90)
        assert sh(cluster, name, f"[ -e {SA_DIR} ] && echo PRESENT || echo absent") == \
            (0, "absent\n")
        spec = json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)["spec"]
        assert not any(v["name"].startswith("kube-api-access-") for v in spec.get("volumes", []))
    finally:
        cluster.kubectl("delete", "pod", name, "--wait=false", check=False)

"""Python clients of the ecosystem, unmodified, against podling: the official ``kubernetes``
client, ``kubernetes_asyncio``, ``kr8s`` and ``lightkube``.

Each loads the kubeconfig podling writes with its own loader and runs the scenario of
:mod:`clients_util`: create, list by label, watch until Running, logs, exec (all four have
it), delete and watch the DELETED event; kubectl then confirms that the pod is gone.
"""

from __future__ import annotations

import asyncio
import errno
import secrets

import pytest

from clients_util import EXEC_COMMAND, NS, TIMEOUT, Scenario, is_running, poll
from manifests import pod as pod_manifest
from streams_util import http_get


@pytest.fixture
def scenario(request, cluster):
    s = Scenario(cluster, request.param)
    yield s
    s.cleanup()


def _param(client: str):
    return pytest.param(client, id=client)


# -- the official client ----------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [_param("kubernetes")], indirect=True)
def test_kubernetes(scenario, cluster):
    pytest.importorskip("kubernetes")
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import stream

    api = config.new_client_from_config(config_file=cluster.server.kubeconfig)
    core = client.CoreV1Api(api)
    try:
        core.create_namespaced_pod(NS, scenario.manifest())
        listed = core.list_namespaced_pod(NS, label_selector=scenario.selector)
        assert [p.metadata.name for p in listed.items] == [scenario.name]

        w = watch.Watch()
        for event in w.stream(core.list_namespaced_pod, NS, timeout_seconds=int(TIMEOUT),
                              field_selector=scenario.field_selector):
            if is_running(api.sanitize_for_serialization(event["object"].status)):
                w.stop()
        assert is_running(api.sanitize_for_serialization(
            core.read_namespaced_pod(scenario.name, NS).status))

        poll(lambda: core.read_namespaced_pod_log(scenario.name, NS, container="main"),
             lambda text: scenario.log_line in text, "the pod's log line")
        out = stream(core.connect_get_namespaced_pod_exec, scenario.name, NS,
                     container="main", command=EXEC_COMMAND, stdout=True, stderr=True,
                     stdin=False, tty=False)
        assert out == scenario.exec_output

        seen = core.list_namespaced_pod(NS, field_selector=scenario.field_selector)
        core.delete_namespaced_pod(scenario.name, NS)
        types = []
        for event in w.stream(core.list_namespaced_pod, NS, timeout_seconds=int(TIMEOUT),
                              field_selector=scenario.field_selector,
                              resource_version=seen.metadata.resource_version):
            types.append(event["type"])
            if event["type"] == "DELETED":
                w.stop()
        assert types[-1:] == ["DELETED"], types
        with pytest.raises(ApiException) as gone:
            core.read_namespaced_pod(scenario.name, NS)
        assert gone.value.status == 404
        assert not scenario.exists()
    finally:
        api.close()


# -- kubernetes_asyncio -----------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [_param("asyncio")], indirect=True)
def test_kubernetes_asyncio(scenario, cluster):
    pytest.importorskip("kubernetes_asyncio")
    asyncio.run(_asyncio_scenario(scenario, cluster.server.kubeconfig))
    assert not scenario.exists()


async def _asyncio_scenario(scenario, kubeconfig: str) -> None:
    from kubernetes_asyncio import client, config, watch
    from kubernetes_asyncio.client.rest import ApiException
    from kubernetes_asyncio.stream import WsApiClient

    configuration = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        core = client.CoreV1Api(api)
        await core.create_namespaced_pod(NS, scenario.manifest())
        listed = await core.list_namespaced_pod(NS, label_selector=scenario.selector)
        assert [p.metadata.name for p in listed.items] == [scenario.name]

        async with watch.Watch() as w:
            async for event in w.stream(core.list_namespaced_pod, NS,
                                        field_selector=scenario.field_selector,
                                        timeout_seconds=int(TIMEOUT)):
                if is_running(api.sanitize_for_serialization(event["object"].status)):
                    break
        pod = await core.read_namespaced_pod(scenario.name, NS)
        assert is_running(api.sanitize_for_serialization(pod.status))

        for _ in range(int(TIMEOUT / 0.2)):
            log = await core.read_namespaced_pod_log(scenario.name, NS, container="main")
            if scenario.log_line in log:
                break
            await asyncio.sleep(0.2)
        assert scenario.log_line in log

        async with WsApiClient(configuration) as ws_api:
            out = await client.CoreV1Api(ws_api).connect_get_namespaced_pod_exec(
                scenario.name, NS, container="main", command=EXEC_COMMAND, stdout=True,
                stderr=True, stdin=False, tty=False)
        assert out == scenario.exec_output

        seen = await core.list_namespaced_pod(NS, field_selector=scenario.field_selector)
        await core.delete_namespaced_pod(scenario.name, NS)
        types = []
        async with watch.Watch() as w:
            async for event in w.stream(core.list_namespaced_pod, NS,
                                        field_selector=scenario.field_selector,
                                        resource_version=seen.metadata.resource_version,
                                        timeout_seconds=int(TIMEOUT)):
                types.append(event["type"])
                if event["type"] == "DELETED":
                    break
        assert types[-1:] == ["DELETED"], types
        with pytest.raises(ApiException) as gone:
            await core.read_namespaced_pod(scenario.name, NS)
        assert gone.value.status == 404


# -- kr8s -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [_param("kr8s")], indirect=True)
def test_kr8s(scenario, cluster):
    kr8s = pytest.importorskip("kr8s")
    from kr8s.objects import Pod

    api = kr8s.api(kubeconfig=cluster.server.kubeconfig)  # GET /version/ first
    assert api.whoami() == "admin"  # a TokenReview of its own token
    created = Pod(scenario.manifest(), api=api)
    created.create()
    listed = api.get("pods", namespace=NS, label_selector=scenario.labels)
    assert [p.name for p in listed] == [scenario.name]

    for _kind, pod in api.watch("pods", namespace=NS, field_selector=scenario.field_selector):
        if is_running(pod.raw.get("status")):
            break
    created.refresh()
    assert is_running(created.raw["status"]) and created.ready()

    poll(lambda: "".join(created.logs(container="main")),
         lambda text: scenario.log_line in text, "the pod's log line")
    done = created.exec(EXEC_COMMAND, container="main")
    assert (done.returncode, done.stdout.decode(), done.stderr) == (
        0, scenario.exec_output, b"")
    failed = created.exec(["sh", "-c", "echo oops >&2; exit 3"], container="main", check=False)
    assert (failed.returncode, failed.stderr) == (3, b"oops\n")

    since = api.get("pods", namespace=NS, field_selector=scenario.field_selector)
    created.delete()
    types = []
    for kind, _pod in api.watch("pods", namespace=NS, field_selector=scenario.field_selector,
                                since=_list_version(since)):
        types.append(kind)
        if kind == "DELETED":
            break
    assert types[-1:] == ["DELETED"], types
    assert not created.exists()
    assert not scenario.exists()


def _list_version(listed) -> str:
    """The resourceVersion to watch from: the newest of the listed pods' versions."""
    return max((p.metadata.resourceVersion for p in listed), key=int)


# -- lightkube --------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [_param("lightkube")], indirect=True)
def test_lightkube(scenario, cluster):
    pytest.importorskip("lightkube")
    from lightkube import ApiError, Client, KubeConfig
    from lightkube.codecs import from_dict
    from lightkube.resources.core_v1 import Pod

    client = Client(config=KubeConfig.from_file(cluster.server.kubeconfig))
    client.create(from_dict(scenario.manifest()))
    listed = list(client.list(Pod, namespace=NS, labels=scenario.labels))
    assert [p.metadata.name for p in listed] == [scenario.name]

    for _kind, pod in client.watch(Pod, namespace=NS, fields={"metadata.name": scenario.name}):
        if is_running(pod.status.to_dict() if pod.status else None):
            break
    client.wait(Pod, scenario.name, namespace=NS, for_conditions=["Ready"])

    poll(lambda: "".join(client.log(scenario.name, namespace=NS, container="main")),
         lambda text: scenario.log_line in text, "the pod's log line")
    done = client.exec(scenario.name, namespace=NS, container="main", command=EXEC_COMMAND,
                       stdout=True, stderr=True)
    assert (done.exit_code, done.stdout, done.stderr) == (0, scenario.exec_output, "")
    fed = client.exec(scenario.name, namespace=NS, container="main", stdin="to stdin\n",
                      command=["sh", "-c", "cat; exit 4"], stdout=True, stderr=True)
    assert (fed.exit_code, fed.stdout) == (4, "to stdin\n")

    version = client.get(Pod, scenario.name, namespace=NS).metadata.resourceVersion
    client.delete(Pod, scenario.name, namespace=NS)
    types = []
    for kind, _pod in client.watch(Pod, namespace=NS, fields={"metadata.name": scenario.name},
                                   resource_version=version):
        types.append(kind)
        if kind == "DELETED":
            break
    assert types[-1:] == ["DELETED"], types
    with pytest.raises(ApiError) as gone:
        client.get(Pod, scenario.name, namespace=NS)
    assert gone.value.status.code == 404
    assert not scenario.exists()


def test_kr8s_port_forward(cluster):
    """kr8s' ``Pod.portforward``: a local port relayed over the portforward WebSocket."""
    kr8s = pytest.importorskip("kr8s")
    from kr8s.objects import Pod

    api = kr8s.api(kubeconfig=cluster.server.kubeconfig)
    name = f"kr8s-web-{secrets.token_hex(3)}"
    web = Pod(pod_manifest(name, cluster.node, [{"name": "web", "image": "nginx"}]), api=api)
    web.create()
    try:
        web.wait("condition=Ready", timeout=int(TIMEOUT))
        for attempt in range(3):
            try:
                with web.portforward(80, local_port=None) as port:
                    status, body = http_get(port)
                break
            except OSError as exc:  # kr8s picks a free port, then binds it: another
                if exc.errno != errno.EADDRINUSE or attempt == 2:  # process may win
                    raise
        assert status == 200 and b"<title>Welcome to nginx!</title>" in body, body[:300]
    finally:
        web.delete()

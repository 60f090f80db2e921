"""A hostile client, driven by hypothesis, against a real API server (memory store, in a
thread of this process): mutated pods as JSON and YAML, raw bytes, the three patch types,
updates, DeleteOptions, bindings, evictions and odd query parameters. Whatever it sends, the
answer is never a 5xx, an error is a Status whose code is the HTTP status, and the pod
stored before the abuse is unchanged afterwards."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import urllib.parse
from typing import Any, Iterator

import pytest
import yaml
from builders import make_pod
from fuzz_strategies import FUZZ, json_patch_ops, json_values, mutated_pods
from rawhttps import RawHttps
from hypothesis import given
from hypothesis import strategies as st

from podling.apiserver.server import RunningServer, ServerConfig, start

PODS = "/api/v1/namespaces/default/pods"


class Api(RawHttps):
    """Raw HTTPS requests to one server, as the admin."""

    def __init__(self, server: RunningServer) -> None:
        super().__init__(server.url, server.admin_token, server.ca_file)

    def send(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> tuple[int, Any]:
        status, _, answer = self.request(method, path, body, content_type)
        return status, answer

    def check(self, method: str, path: str, body: bytes | None = None,
              content_type: str = "application/json") -> int:
        """Send; fail on a 5xx or an error that is not a Status of that code."""
        status, answer = self.send(method, path, body, content_type)
        assert status < 500, (method, path, body, answer)
        if status >= 400:
            assert isinstance(answer, dict) and answer.get("kind") == "Status", answer
            assert answer.get("code") == status, answer
        return status


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[Api]:
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[RunningServer] = concurrent.futures.Future()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(start(ServerConfig(
                data_dir=str(tmp_path_factory.mktemp("fuzz")), port=0, datastore="memory",
                service_account_admission=False))))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            started.set_exception(exc)
            return
        loop.run_forever()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    server = started.result(30)
    try:
        yield Api(server)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def pod_body(name: str, **labels: str) -> bytes:
    return json.dumps(make_pod(name, namespace="default").container("c", "nginx").bare()
                      .labels(**labels).build()).encode()


@pytest.fixture(scope="module")
def baseline(api: Api) -> dict:
    assert api.check("POST", PODS, pod_body("fuzz-baseline", keep="me")) == 201
    assert api.check("POST", PODS, pod_body("fuzz-target", a="1")) == 201
    return api.send("GET", f"{PODS}/fuzz-baseline")[1]


@FUZZ
@given(doc=mutated_pods(), as_yaml=st.booleans())
def test_creating_mutated_pods(api: Api, baseline: dict, doc: Any, as_yaml: bool) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict) and \
            doc["metadata"].get("name") == "p":
        doc["metadata"]["name"] = "fuzz-new"  # keep clear of the baseline
    if as_yaml:
        api.check("POST", PODS, yaml.safe_dump(doc).encode(), "application/yaml")
    else:
        api.check("POST", PODS, json.dumps(doc).encode())
    api.send("DELETE", f"{PODS}/fuzz-new")


@FUZZ
@given(body=st.binary(max_size=200), content_type=st.sampled_from([
    "application/json", "application/yaml", "application/merge-patch+json",
    "application/strategic-merge-patch+json", "application/json-patch+json",
    "application/vnd.kubernetes.protobuf", "text/plain"]), method=st.sampled_from(
    ["POST", "PUT", "PATCH", "DELETE"]))
def test_raw_bytes(api: Api, baseline: dict, body: bytes, content_type: str,
                   method: str) -> None:
    path = PODS if method == "POST" else f"{PODS}/fuzz-target"
    api.check(method, path, body, content_type)
    if method == "DELETE":
        api.send("POST", PODS, pod_body("fuzz-target", a="1"))


@FUZZ
@given(document=json_values | mutated_pods() | json_patch_ops(), kind=st.sampled_from([
    "application/merge-patch+json", "application/strategic-merge-patch+json",
    "application/json-patch+json"]), subresource=st.sampled_from(["", "/status"]))
def test_patches(api: Api, baseline: dict, document: Any, kind: str, subresource: str) -> None:
    api.check("PATCH", f"{PODS}/fuzz-target{subresource}", json.dumps(document).encode(), kind)


@FUZZ
@given(doc=mutated_pods(), subresource=st.sampled_from(["", "/status"]))
def test_updates(api: Api, baseline: dict, doc: Any, subresource: str) -> None:
    api.check("PUT", f"{PODS}/fuzz-target{subresource}", json.dumps(doc).encode())


@FUZZ
@given(options=json_values | st.fixed_dictionaries({}, optional={
    "gracePeriodSeconds": json_values, "preconditions": json_values,
    "propagationPolicy": json_values, "dryRun": json_values}),
    query=st.sampled_from(["", "?gracePeriodSeconds=x", "?gracePeriodSeconds=-5",
                           "?dryRun=All", "?dryRun=x", "?propagationPolicy=x"]))
def test_delete_options(api: Api, baseline: dict, options: Any, query: str) -> None:
    api.check("DELETE", f"{PODS}/fuzz-target{query}", json.dumps(options).encode())
    api.send("POST", PODS, pod_body("fuzz-target", a="1"))


@FUZZ
@given(body=json_values | st.fixed_dictionaries({"target": json_values}),
       subresource=st.sampled_from(["binding", "eviction"]))
def test_bindings_and_evictions(api: Api, baseline: dict, body: Any, subresource: str) -> None:
    api.check("POST", f"{PODS}/fuzz-target/{subresource}", json.dumps(body).encode())
    api.send("POST", PODS, pod_body("fuzz-target", a="1"))


query_values = st.text(max_size=20)


@FUZZ
@given(params=st.dictionaries(st.sampled_from([
    "labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
    "resourceVersionMatch", "timeoutSeconds", "fieldValidation", "pretty", "watch",
    "allowWatchBookmarks", "sendInitialEvents"]), query_values, max_size=4),
    path=st.sampled_from([PODS, "/api/v1/pods", f"{PODS}/fuzz-target", "/api/v1/nodes",
                          "/api/v1/namespaces", "/api/v1/namespaces/default/events"]))
def test_reads_with_odd_parameters(api: Api, baseline: dict, params: dict[str, str],
                                   path: str) -> None:
    params.pop("watch", None)  # a watch would stream until its timeout
    query = urllib.parse.urlencode(params)
    api.check("GET", f"{path}?{query}" if query else path)


def test_the_pod_stored_before_the_abuse_is_unchanged(api: Api, baseline: dict) -> None:
    status, now = api.send("GET", f"{PODS}/fuzz-baseline")
    assert status == 200 and now == baseline

"""The server starts, kubectl reaches it, and credentials are required."""

import json
import ssl
import urllib.error
import urllib.request


def test_kubectl_lists_built_in_namespaces(server):
    out = server.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert out == ["namespace/default", "namespace/kube-node-lease", "namespace/kube-public",
                   "namespace/kube-system"]


def test_requests_without_a_valid_token_get_401(server):
    context = ssl.create_default_context(cafile=server.ca_file)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        request = urllib.request.Request(server.url + "/api/v1/namespaces/default/pods",
                                         headers=headers)
        try:
            urllib.request.urlopen(request, context=context, timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
            assert json.loads(exc.read())["reason"] == "Unauthorized"
        else:
            raise AssertionError("expected 401")

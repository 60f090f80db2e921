"""ConfigMaps and Secrets with the real kubectl and the Python client (API only, no agent).

One server per module; names are unique per test.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from kubernetes import client

from kubectl_util import get_json, is_gone, new_namespace, unique, wait_until

pytestmark = pytest.mark.e2e

KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
           "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
           "'[-._a-zA-Z0-9]+')")
IMMUTABLE = "Forbidden: field is immutable when `immutable` is set"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create(server, obj: dict, *args: str, check: bool = True):
    return server.kubectl("create", *args, "-f", "-", input=json.dumps(obj), check=check)


def header(output: str) -> list[str]:
    return output.splitlines()[0].split()


def row(output: str, name: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[0] == name)


def tls_pair(tmp_path) -> tuple[str, str]:
    """A self-signed certificate and its key, as files kubectl create secret tls reads."""
    from podling.util.certs import self_signed
    cert, key = self_signed("example.test", ["example.test"])
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    return str(cert_file), str(key_file)


# --- create, get, describe ------------------------------------------------------------------

def test_create_configmap_from_literals_and_files(shared_server, tmp_path) -> None:
    name = unique("cm")
    (tmp_path / "app.conf").write_text("port=80\n")
    shared_server.kubectl("create", "configmap", name, "--from-literal=a=1",
                          f"--from-file={tmp_path / 'app.conf'}")
    cm = get_json(shared_server, "configmap", name)
    assert cm["data"] == {"a": "1", "app.conf": "port=80\n"}
    out = shared_server.kubectl("get", "cm", name).stdout
    assert header(out) == ["NAME", "DATA", "AGE"]
    assert row(out, name)[:2] == [name, "2"]
    described = shared_server.kubectl("describe", "configmap", name).stdout
    assert re.search(rf"^Name:\s+{name}$", described, re.M)
    assert "app.conf:\n----\nport=80" in described and "BinaryData\n====" in described


def test_create_generic_secret_get_yaml_and_describe(shared_server, tmp_path) -> None:
    name = unique("sec")
    (tmp_path / "token").write_text("s3cret")
    shared_server.kubectl("create", "secret", "generic", name, "--from-literal=user=admin",
                          f"--from-file={tmp_path / 'token'}")
    secret = get_json(shared_server, "secret", name)
    assert secret["type"] == "Opaque" and "stringData" not in secret
    assert secret["data"] == {"user": b64("admin"), "token": b64("s3cret")}
    out = shared_server.kubectl("get", "secret", name).stdout
    assert header(out) == ["NAME", "TYPE", "DATA", "AGE"]
    assert row(out, name)[:3] == [name, "Opaque", "2"]
    yaml_out = shared_server.kubectl("get", "secret", name, "-o", "yaml").stdout
    assert f"token: {b64('s3cret')}" in yaml_out and "stringData" not in yaml_out
    described = shared_server.kubectl("describe", "secret", name).stdout
    assert re.search(r"^Type:\s+Opaque$", described, re.M)
    assert re.search(r"^token:\s+6 bytes$", described, re.M) and "s3cret" not in described


def test_create_tls_and_docker_registry_secrets(shared_server, tmp_path) -> None:
    tls, docker = unique("tls"), unique("reg")
    cert, key = tls_pair(tmp_path)
    shared_server.kubectl("create", "secret", "tls", tls, f"--cert={cert}", f"--key={key}")
    shared_server.kubectl("create", "secret", "docker-registry", docker,
                          "--docker-server=registry.example", "--docker-username=u",
                          "--docker-password=p")
    got = get_json(shared_server, "secret", tls)
    assert got["type"] == "kubernetes.io/tls" and set(got["data"]) == {"tls.crt", "tls.key"}
    reg = get_json(shared_server, "secret", docker)
    assert reg["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(reg["data"][".dockerconfigjson"]))
    assert config["auths"]["registry.example"]["username"] == "u"
    (tmp_path / "other").mkdir()
    _, other_key = tls_pair(tmp_path / "other")
    mismatched = create(shared_server, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": unique("pair")},
        "type": "kubernetes.io/tls", "data": {"tls.crt": got["data"]["tls.crt"],
                                              "tls.key": b64(open(other_key).read())}})
    assert "Warning: tls: private key does not match public key" in mismatched.stderr
    out = shared_server.kubectl("get", "secrets", "--field-selector",
                                "type=kubernetes.io/tls").stdout
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert tls in names and docker not in names


# --- updates ---------------------------------------------------------------------------------

def test_patch_and_replace(shared_server) -> None:
    name = unique("upd")
    shared_server.kubectl("create", "configmap", name, "--from-literal=a=1")
    shared_server.kubectl("patch", "configmap", name, "-p", '{"data": {"b": "2"}}')
    assert get_json(shared_server, "cm", name)["data"] == {"a": "1", "b": "2"}
    current = get_json(shared_server, "cm", name)
    current["data"] = {"c": "3"}
    shared_server.kubectl("replace", "-f", "-", input=json.dumps(current))
    assert get_json(shared_server, "cm", name)["data"] == {"c": "3"}
    secret = unique("upd")
    shared_server.kubectl("create", "secret", "generic", secret, "--from-literal=a=1")
    shared_server.kubectl("patch", "secret", secret, "-p", '{"stringData": {"a": "x", "b": "y"}}')
    got = get_json(shared_server, "secret", secret)
    assert got["data"] == {"a": b64("x"), "b": b64("y")} and "stringData" not in got


def test_apply_secret_with_string_data(shared_server) -> None:
    name = unique("apl")
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                "stringData": {"password": "one"}}
    shared_server.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    assert get_json(shared_server, "secret", name)["data"] == {"password": b64("one")}
    manifest["stringData"] = {"password": "two", "extra": "3"}
    shared_server.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    got = get_json(shared_server, "secret", name)
    assert got["data"] == {"password": b64("two"), "extra": b64("3")}
    assert got["type"] == "Opaque" and "stringData" not in got


def test_immutable_updates_are_refused(shared_server) -> None:
    cm, secret = unique("imm"), unique("imm")
    create(shared_server, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm},
                           "data": {"a": "1"}, "immutable": True})
    refused = shared_server.kubectl("patch", "cm", cm, "-p", '{"data": {"a": "2"}}', check=False)
    assert refused.returncode != 0
    assert f'The ConfigMap "{cm}" is invalid: data: {IMMUTABLE}' in refused.stderr
    unset = shared_server.kubectl("patch", "cm", cm, "-p", '{"immutable": false}', check=False)
    assert f"immutable: {IMMUTABLE}" in unset.stderr
    shared_server.kubectl("label", "cm", cm, "team=x")  # metadata still changes
    create(shared_server, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret},
                           "stringData": {"a": "1"}, "immutable": True})
    refused = shared_server.kubectl("patch", "secret", secret, "-p",
                                    '{"stringData": {"a": "2"}}', check=False)
    assert f'The Secret "{secret}" is invalid: data: {IMMUTABLE}' in refused.stderr
    retyped = shared_server.kubectl("patch", "secret", secret, "-p",
                                    '{"type": "kubernetes.io/basic-auth"}', check=False)
    assert 'type: Invalid value: "kubernetes.io/basic-auth": field is immutable' in \
        retyped.stderr


# --- bad input -------------------------------------------------------------------------------

def test_bad_names_keys_sizes_and_types_are_rejected(shared_server) -> None:
    bad_key = create(shared_server, {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "badkey"},
                                     "data": {"bad key": "1"}}, check=False)
    assert f'The ConfigMap "badkey" is invalid: data[bad key]: Invalid value: "bad key": ' \
           f'{KEY_MSG}' in bad_key.stderr
    bad_name = shared_server.kubectl("create", "configmap", "Bad_Name", "--from-literal=a=1",
                                     check=False)
    assert 'metadata.name: Invalid value: "Bad_Name"' in bad_name.stderr
    both = create(shared_server, {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "both"}, "data": {"k": "1"},
                                  "binaryData": {"k": b64("1")}}, check=False)
    assert 'data[k]: Invalid value: "k": duplicate of key present in binaryData' in both.stderr
    big = create(shared_server, {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "big"},
                                 "data": {"a": "x" * (1024 * 1024), "b": "y"}}, check=False)
    assert 'The ConfigMap "big" is invalid: []: Too long: may not be more than 1048576 bytes' \
        in big.stderr
    tls = create(shared_server, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"},
                                 "type": "kubernetes.io/tls",
                                 "data": {"tls.crt": b64("c")}}, check=False)
    assert 'The Secret "t" is invalid: data[tls.key]: Required value' in tls.stderr
    docker = create(shared_server, {"apiVersion": "v1", "kind": "Secret",
                                    "metadata": {"name": "d"},
                                    "type": "kubernetes.io/dockerconfigjson",
                                    "stringData": {".dockerconfigjson": "{nope"}}, check=False)
    assert 'data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": invalid ' \
           "character 'n' looking for beginning of object key string" in docker.stderr
    base64_bad = create(shared_server, {"apiVersion": "v1", "kind": "Secret",
                                        "metadata": {"name": "b"}, "data": {"a": "YWJjZ"}},
                        check=False)
    assert 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at ' \
           "input byte 4" in base64_bad.stderr
    for name in ("badkey", "both", "big", "t", "d", "b"):
        assert is_gone(shared_server, "cm" if name in ("badkey", "both", "big") else "secret",
                       name)


# --- namespaces, explain, the Python client --------------------------------------------------

def test_deleting_a_namespace_removes_its_configmaps_and_secrets(shared_server) -> None:
    ns = new_namespace(shared_server, "cms")
    shared_server.kubectl("create", "configmap", "c", "-n", ns, "--from-literal=a=1")
    shared_server.kubectl("create", "secret", "generic", "s", "-n", ns, "--from-literal=a=1")
    shared_server.kubectl("delete", "ns", ns, "--timeout=60s")

    def leftovers() -> list[str]:
        items = get_json(shared_server, "configmaps,secrets", "-A")["items"]
        return [i["metadata"]["name"] for i in items if i["metadata"]["namespace"] == ns]

    wait_until(lambda: leftovers() == [], message=f"no configmaps or secrets left in {ns}")


def test_explain(shared_server) -> None:
    out = shared_server.kubectl("explain", "secret.stringData").stdout
    assert "KIND:" in out and "Secret" in out and "stringData" in out


def test_python_client_reads_back_a_secret(shared_server) -> None:
    api = shared_server.api_client()
    try:
        core = client.CoreV1Api(api)
        name = unique("py")
        core.create_namespaced_secret("default", {
            "metadata": {"name": name, "labels": {"app": "py"}},
            "stringData": {"user": "me"}, "data": {"pass": b64("pw")}})
        got = core.read_namespaced_secret(name, "default")
        assert isinstance(got, client.V1Secret)
        assert got.type == "Opaque" and got.string_data is None
        assert got.data == {"user": b64("me"), "pass": b64("pw")}
        listed = core.list_namespaced_secret("default", label_selector="app=py")
        assert [s.metadata.name for s in listed.items] == [name]
        core.delete_namespaced_secret(name, "default")
        assert name not in [s.metadata.name
                            for s in core.list_namespaced_secret("default").items]
    finally:
        api.close()

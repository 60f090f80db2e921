"""ConfigMaps and Secrets through the generic store (stringData, defaults, immutability),
their Tables, and over HTTP (decoding errors, the type field selector)."""

from __future__ import annotations

import base64

import pytest
from inprocess import server  # noqa: F401 - fixture

from podling.api import tables
from podling.api.errors import ApiError
from podling.apiserver.registry.store import RegistryStore
from podling.apiserver.server import RunningServer
from podling.client import ApiClient, ClientConfig


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_body(**fields: object) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, **fields}


async def test_secret_create_merges_string_data_and_defaults_type(stores: dict) -> None:
    secrets: RegistryStore = stores["secrets"]
    created = await secrets.create("default", secret_body(
        data={"a": b64("from-data"), "b": "YW\nJj"}, stringData={"a": "from-string", "c": "3"}))
    assert created["type"] == "Opaque"
    assert "stringData" not in created
    assert created["data"] == {"a": b64("from-string"), "b": "YWJj", "c": b64("3")}
    stored = await secrets.get("default", "s")
    assert stored == created


async def test_secret_update_merges_string_data_and_keeps_type(stores: dict) -> None:
    secrets: RegistryStore = stores["secrets"]
    await secrets.create("default", secret_body(data={"a": b64("1")}))

    def with_string_data(current: dict) -> dict:
        current.pop("type")  # an update without type is defaulted, not a type change
        current["stringData"] = {"a": "2"}
        return current

    updated = await secrets.update("default", "s", with_string_data)
    assert updated["data"] == {"a": b64("2")} and updated["type"] == "Opaque"
    assert "stringData" not in updated

    with pytest.raises(ApiError) as err:
        await secrets.update("default", "s", lambda s: {**s, "type": "kubernetes.io/tls"})
    assert err.value.code == 422
    assert err.value.message == ('Secret "s" is invalid: [type: Invalid value: '
                                 '"kubernetes.io/tls": field is immutable, data[tls.crt]: '
                                 'Required value, data[tls.key]: Required value]')


async def test_immutable_secret_refuses_data_changes_but_not_labels(stores: dict) -> None:
    secrets: RegistryStore = stores["secrets"]
    await secrets.create("default", secret_body(data={"a": b64("1")}, immutable=True))
    with pytest.raises(ApiError) as err:
        await secrets.update("default", "s", lambda s: {**s, "stringData": {"a": "2"}})
    assert err.value.message == ('Secret "s" is invalid: data: Forbidden: field is immutable '
                                 'when `immutable` is set')
    labelled = await secrets.update("default", "s", lambda s: {
        **s, "metadata": {**s["metadata"], "labels": {"x": "y"}}})
    assert labelled["metadata"]["labels"] == {"x": "y"}


async def test_immutable_config_map(stores: dict) -> None:
    cms: RegistryStore = stores["configmaps"]
    await cms.create("default", {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "c"}, "data": {"a": "1"},
                                 "immutable": True})
    with pytest.raises(ApiError) as err:
        await cms.update("default", "c", lambda c: {**c, "data": {"a": "2"}, "immutable": False})
    details = err.value.details or {}
    assert [(c["field"], c["reason"]) for c in details["causes"]] == [
        ("immutable", "FieldValueForbidden"), ("data", "FieldValueForbidden")]


async def test_invalid_config_map_key_is_422_with_field_path(stores: dict) -> None:
    with pytest.raises(ApiError) as err:
        await stores["configmaps"].create("default", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"bad key": "1"}})
    assert err.value.code == 422
    assert err.value.message.startswith(
        'ConfigMap "c" is invalid: data[bad key]: Invalid value: "bad key": a valid config key '
        "must consist of alphanumeric characters")


@pytest.mark.parametrize("resource, obj, cells", [
    ("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": ""}},
     ["c", 2]),
    ("configmaps", {"metadata": {"name": "empty"}}, ["empty", 0]),
    ("secrets", {"metadata": {"name": "s"}, "type": "kubernetes.io/tls",
                 "data": {"tls.crt": "", "tls.key": ""}}, ["s", "kubernetes.io/tls", 2]),
    ("secrets", {"metadata": {"name": "o"}, "type": "Opaque"}, ["o", "Opaque", 0]),
])
def test_tables(resource: str, obj: dict, cells: list) -> None:
    import datetime as dt
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    obj["metadata"]["creationTimestamp"] = "2025-12-31T23:59:00Z"
    table = tables.table(resource, [obj], now=now)
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == (["Name", "Data", "Age"] if resource == "configmaps"
                     else ["Name", "Type", "Data", "Age"])
    assert table["rows"][0]["cells"] == cells + ["60s"]


# --- over HTTP: decoding errors, selectors -------------------------------------------------


async def test_http_bad_base64_is_400_and_type_selects(server: RunningServer) -> None:
    ns = "/api/v1/namespaces/default/secrets"
    async with ApiClient(ClientConfig(server=server.url, token=server.admin_token,
                                      ca_file=server.ca_file)) as api:
        with pytest.raises(ApiError) as bad:
            await api.request("POST", ns, body=secret_body(data={"a": "YWJjZ"}))
        assert (bad.value.code, bad.value.message) == (
            400, 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at '
                 "input byte 4")
        await api.request("POST", ns, body={
            "metadata": {"name": "t"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": "c", "tls.key": "k"}})
        await api.request("POST", ns, body=secret_body(stringData={"a": "1"}))
        tls = await api.request("GET", ns + "?fieldSelector=type%3Dkubernetes.io%2Ftls")
        assert [s["metadata"]["name"] for s in tls["items"]] == ["t"]
        with pytest.raises(ApiError) as unsupported:
            await api.request("GET", ns + "?fieldSelector=data.a%3D1")
        assert unsupported.value.message == "field label not supported: data.a"


def test_tls_secret_warnings(stores: dict) -> None:
    from podling.util.certs import self_signed
    cert, key = self_signed("a.test", ["a.test"])
    _, other = self_signed("b.test", ["b.test"])
    strategy = stores["secrets"].strategy

    def tls(crt: bytes, k: bytes) -> dict:
        return {"type": "kubernetes.io/tls", "data": {
            "tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(k).decode()}}

    assert strategy.warnings(tls(cert, key)) == []
    assert strategy.warnings(tls(cert, other)) == ["tls: private key does not match public key"]
    assert strategy.warnings({"type": "Opaque", "data": {}}) == []
    assert stores["configmaps"].strategy.warnings({"data": {}}) == []

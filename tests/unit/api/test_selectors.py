"""Label and field selectors: parsing, matching and the API server's error messages."""

from __future__ import annotations

import pytest

from podling.api.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    check_field_selector,
    field_set,
    label_selector_from_object,
    parse_field_selector,
    parse_label_selector,
)

QNAME_REGEX = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
               "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
               "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
VALUE_REGEX = ("a valid label must be an empty string or consist of alphanumeric characters, "
               "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
               "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
               "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")

WEB = {"app": "web", "tier": "frontend", "env": "prod", "replicas": "3"}

LABEL_MATCH_CASES = [
    ("", WEB, True),
    ("", None, True),
    ("app=web", WEB, True),
    ("app==web", WEB, True),
    ("app=db", WEB, False),
    ("app!=db", WEB, True),
    ("missing!=x", WEB, True),
    ("app!=web", WEB, False),
    ("app", WEB, True),
    ("!app", WEB, False),
    ("!missing", WEB, True),
    ("missing", WEB, False),
    ("app in (web,db)", WEB, True),
    ("app in (db)", WEB, False),
    ("missing in (x)", WEB, False),
    ("app notin (db)", WEB, True),
    ("app notin (web, db)", WEB, False),
    ("missing notin (x)", WEB, True),
    ("app=web,tier=frontend", WEB, True),
    ("app=web,tier=backend", WEB, False),
    ("  app = web ,  env  in  ( prod , dev ) ,!gpu ", WEB, True),
    ("replicas>2", WEB, True),
    ("replicas<3", WEB, False),
    ("app>2", WEB, False),
    ("app=", {"app": ""}, True),
    ("app in ()", {"app": ""}, True),
    ("app=web", None, False),
    ("!app", None, True),
    ("example.com/role=db", {"example.com/role": "db"}, True),
    ("in in (in, notin)", {"in": "notin"}, True),
]


@pytest.mark.parametrize("text,labels,expected", LABEL_MATCH_CASES)
def test_label_selector_matches(text: str, labels: dict | None, expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


@pytest.mark.parametrize("text,canonical", [
    ("b=2,a=1", "a=1,b=2"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("!a, b == c, d != e", "!a,b==c,d!=e"),
    ("n>5", "n>5"),
])
def test_label_selector_string(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


LABEL_ERROR_CASES = [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a!b", "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a=b=c", "found '=', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a,,b", "found ',', expected: identifier after ','"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("a in (,,)", "unable to parse requirement: found ')', expected: ',', or identifier"),
    ("a<=3", "unable to parse requirement: found '=', expected: identifier"),
    ("app:web", f'unable to parse requirement: <nil>: Invalid value: "app:web": name part '
                f"{QNAME_REGEX}"),
    ("a=b$", f'unable to parse requirement: values[0][a]: Invalid value: "b$": {VALUE_REGEX}'),
    ("a=" + "x" * 64, "unable to parse requirement: values[0][a]: Invalid value: "
                      f'"{"x" * 64}": must be no more than 63 characters'),
    ("n>x", 'unable to parse requirement: values[0]: Invalid value: "x": for \'Gt\', \'Lt\' '
            "operators, the value must be an integer"),
    ("a/b/c", 'unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name '
              f"{QNAME_REGEX} with an optional DNS subdomain prefix and '/' "
              "(e.g. 'example.com/MyName')"),
    ("/a", 'unable to parse requirement: <nil>: Invalid value: "/a": prefix part must be '
           "non-empty"),
]


@pytest.mark.parametrize("text,message", LABEL_ERROR_CASES)
def test_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector(text)
    assert str(err.value) == message


def test_label_key_prefix_errors() -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector("Example.com/a")
    assert str(err.value).startswith(
        'unable to parse requirement: <nil>: Invalid value: "Example.com/a": prefix part a '
        "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters")


def test_label_selector_helpers() -> None:
    sel = parse_label_selector("app in (web), tier=frontend, x in (a,b)")
    assert sel.requires_exact_match("app") == "web"
    assert sel.requires_exact_match("tier") == "frontend"
    assert sel.requires_exact_match("x") is None
    assert sel.requires_exact_match("other") is None
    assert parse_label_selector("").empty() and not sel.empty()


OBJECT_CASES = [
    ({}, WEB, True),
    ({}, None, True),
    ({"matchLabels": {"app": "web"}}, WEB, True),
    ({"matchLabels": {"app": "db"}}, WEB, False),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
     WEB, True),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, WEB, False),
    ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}],
      "matchLabels": {"tier": "frontend"}}, WEB, True),
    ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, WEB, False),
]


@pytest.mark.parametrize("obj,labels,expected", OBJECT_CASES)
def test_label_selector_from_object(obj: dict, labels: dict | None, expected: bool) -> None:
    assert label_selector_from_object(obj).matches(labels) is expected


def test_nil_label_selector_matches_nothing() -> None:
    sel = label_selector_from_object(None)
    assert isinstance(sel, LabelSelector) and not sel.matches({}) and not sel.empty()


@pytest.mark.parametrize("obj,message", [
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
     '"Gt" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]},
     "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     'values: Invalid value: ["x"]: values set must be empty for exists and does not exist'),
    ({"matchLabels": {"bad key": "v"}},
     f'key: Invalid value: "bad key": name part {QNAME_REGEX}'),
    ({"matchLabels": {"bad key": "a b"}},
     f'[key: Invalid value: "bad key": name part {QNAME_REGEX}, '
     f'values[0][bad key]: Invalid value: "a b": {VALUE_REGEX}]'),
])
def test_label_selector_from_object_errors(obj: dict, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        label_selector_from_object(obj)
    assert str(err.value) == message


# --- field selectors -----------------------------------------------------------------------

POD = {
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"nodeName": "node1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default"},
    "status": {"phase": "Running", "podIP": "10.42.0.7", "podIPs": [{"ip": "10.42.0.7"}]},
}

FIELD_MATCH_CASES = [
    ("", {}, True),
    ("metadata.name=web", {"metadata.name": "web"}, True),
    ("metadata.name==web", {"metadata.name": "web"}, True),
    ("metadata.name=db", {"metadata.name": "web"}, False),
    ("status.phase!=Running", {"status.phase": "Running"}, False),
    ("status.phase!=Succeeded,spec.nodeName=node1",
     {"status.phase": "Running", "spec.nodeName": "node1"}, True),
    ("spec.nodeName=", {"spec.nodeName": ""}, True),
    ("spec.nodeName=", {}, True),
    ("involvedObject.namespace=", {"involvedObject.namespace": "default"}, False),
    (r"a=x\,y", {"a": "x,y"}, True),
    (r"a=x\=y\\", {"a": "x=y\\"}, True),
    ("a=b,,c=d", {"a": "b", "c": "d"}, True),
]


@pytest.mark.parametrize("text,fields,expected", FIELD_MATCH_CASES)
def test_field_selector_matches(text: str, fields: dict, expected: bool) -> None:
    assert parse_field_selector(text).matches(fields) is expected


def test_field_selector_requirements_and_string() -> None:
    sel = parse_field_selector(r"status.phase!=Running,spec.nodeName==n\,1")
    assert [(r.field, r.operator, r.value) for r in sel.requirements] == [
        ("spec.nodeName", "=", "n,1"), ("status.phase", "!=", "Running")]
    assert str(sel) == r"spec.nodeName=n\,1,status.phase!=Running"
    assert sel.requires_exact_match("spec.nodeName") == "n,1"
    assert sel.requires_exact_match("status.phase") is None
    assert parse_field_selector("").empty()
    assert parse_field_selector("a = b").requirements[0].field == "a "


@pytest.mark.parametrize("text,message", [
    ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
    ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_field_selector(text)
    assert str(err.value) == message


@pytest.mark.parametrize("resource,text,message", [
    ("pods", "spec.foo=x", "field label not supported: spec.foo"),
    ("events", "involvedObject.foo=x", "field label not supported: involvedObject.foo"),
    ("nodes", "metadata.namespace=x", "field label not supported: metadata.namespace"),
    ("namespaces", "spec.finalizers=x", "field label not supported: spec.finalizers"),
    ("leases", "spec.holderIdentity=x", '"spec.holderIdentity" is not a known field selector: '
                                        'only "metadata.name", "metadata.namespace"'),
    ("secrets", "data.a=x", "field label not supported: data.a"),
    ("configmaps", "data.a=x", '"data.a" is not a known field selector: '
                               'only "metadata.name", "metadata.namespace"'),
])
def test_check_field_selector_rejects(resource: str, text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        check_field_selector(resource, parse_field_selector(text))
    assert str(err.value) == message


@pytest.mark.parametrize("resource,text", [
    ("pods", "metadata.name=a,metadata.namespace=b,spec.nodeName=c,spec.restartPolicy=d,"
             "spec.schedulerName=e,spec.serviceAccountName=f,spec.hostNetwork=true,"
             "status.phase=g,status.podIP=h,status.podIPs=i,status.nominatedNodeName=j"),
    ("events", "involvedObject.kind=Pod,involvedObject.namespace=,involvedObject.name=web,"
               "involvedObject.uid=u,involvedObject.apiVersion=v1,reason=Pulled,type=Normal,"
               "involvedObject.resourceVersion=1,involvedObject.fieldPath=x,source=kubelet,"
               "reportingComponent=kubelet,metadata.name=x,metadata.namespace=y"),
    ("nodes", "metadata.name=n,spec.unschedulable=false"),
    ("namespaces", "metadata.name=n,status.phase=Active"),
    ("leases", "metadata.name=n,metadata.namespace=kube-node-lease"),
    ("secrets", "metadata.name=n,metadata.namespace=ns,type=kubernetes.io/tls"),
])
def test_check_field_selector_accepts(resource: str, text: str) -> None:
    sel = parse_field_selector(text)
    assert check_field_selector(resource, sel) == sel


def test_check_field_selector_renames_spec_host() -> None:
    checked = check_field_selector("pods", parse_field_selector("spec.host=node1"))
    assert checked == FieldSelector(parse_field_selector("spec.nodeName=node1").requirements)


def test_pod_field_set() -> None:
    assert field_set("pods", POD) == {
        "metadata.name": "web", "metadata.namespace": "default", "spec.nodeName": "node1",
        "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "default", "spec.hostNetwork": "false",
        "status.phase": "Running", "status.podIP": "10.42.0.7", "status.nominatedNodeName": "",
    }
    bare = field_set("pods", {"metadata": {"name": "p"}, "spec": {"hostNetwork": True},
                              "status": {"podIP": "10.0.0.9"}})
    assert bare["spec.hostNetwork"] == "true" and bare["status.podIP"] == "10.0.0.9"
    assert bare["spec.nodeName"] == "" and bare["metadata.namespace"] == ""


def test_event_node_namespace_lease_field_sets() -> None:
    event = {"metadata": {"name": "web.1", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default",
                                "uid": "abc", "apiVersion": "v1", "resourceVersion": "12",
                                "fieldPath": "spec.containers{main}"},
             "reason": "Pulled", "type": "Normal", "source": {"component": "kubelet"},
             "reportingComponent": "kubelet"}
    fields = field_set("events", event)
    assert fields["involvedObject.uid"] == "abc" and fields["source"] == "kubelet"
    assert fields["involvedObject.fieldPath"] == "spec.containers{main}"
    assert fields["reportingComponent"] == "kubelet" and fields["metadata.namespace"] == "default"
    assert parse_field_selector("involvedObject.name=web,involvedObject.kind=Pod").matches(fields)
    assert field_set("nodes", {"metadata": {"name": "n1"}, "spec": {"unschedulable": True}}) == {
        "metadata.name": "n1", "spec.unschedulable": "true"}
    assert field_set("nodes", {"metadata": {"name": "n1"}})["spec.unschedulable"] == "false"
    assert field_set("namespaces", {"metadata": {"name": "a"}, "status": {"phase": "Active"}}) == {
        "metadata.name": "a", "status.phase": "Active"}
    assert field_set("leases", {"metadata": {"name": "n1", "namespace": "kube-node-lease"}}) == {
        "metadata.name": "n1", "metadata.namespace": "kube-node-lease"}


def test_secret_field_set() -> None:
    secret = {"metadata": {"name": "s", "namespace": "ns"}, "type": "Opaque", "data": {}}
    assert field_set("secrets", secret) == {"metadata.name": "s", "metadata.namespace": "ns",
                                            "type": "Opaque"}

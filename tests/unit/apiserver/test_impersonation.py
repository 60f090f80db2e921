"""Impersonation headers: who the request becomes, and what the requester needs."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from podling.api import errors
from podling.apiserver import authz
from podling.apiserver.auth import ADMIN, User
from podling.apiserver.impersonation import impersonate


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


class Allows:
    """An RBAC stand-in that allows exactly the listed (verb, resource, name) triples and
    records what it was asked."""

    def __init__(self, *allowed: tuple[str, str, str]) -> None:
        self.allowed = set(allowed)
        self.asked: list[authz.Attributes] = []

    def decide(self, user, attrs: authz.Attributes) -> tuple[bool, str]:
        self.asked.append(attrs)
        return (attrs.verb, attrs.resource, attrs.name or "") in self.allowed, ""


ALICE = User("alice", ("system:authenticated",))


def test_a_user_gets_the_groups_named_and_authenticated() -> None:
    user = impersonate(ADMIN, headers(("Impersonate-User", "bob"),
                                      ("Impersonate-Group", "dev"),
                                      ("Impersonate-Group", "ops"),
                                      ("Impersonate-Extra-Scopes", "view"),
                                      ("Impersonate-Extra-Acme.com%2Fteam", "a"),
                                      ("Impersonate-Uid", "1234")), None)
    assert (user.name, user.groups, user.uid) == ("bob", ("dev", "ops", "system:authenticated"),
                                                  "1234")
    assert dict(user.extra) == {"scopes": ("view",), "acme.com/team": ("a",)}
    assert not user.admin


def test_a_service_account_gets_its_own_groups() -> None:
    user = impersonate(ADMIN, headers(("Impersonate-User", "system:serviceaccount:ci:b")),
                       None)
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:ci",
                           "system:authenticated")
    anonymous = impersonate(ADMIN, headers(("Impersonate-User", "system:anonymous")), None)
    assert anonymous.groups == ("system:unauthenticated",)


def test_each_thing_named_is_checked() -> None:
    rbac = Allows(("impersonate", "serviceaccounts", "b"), ("impersonate", "groups", "dev"),
                  ("impersonate", "userextras", "view"), ("impersonate", "uids", "7"))
    impersonate(ALICE, headers(("Impersonate-User", "system:serviceaccount:ci:b"),
                               ("Impersonate-Group", "dev"), ("Impersonate-Extra-scopes", "view"),
                               ("Impersonate-Uid", "7")), rbac)
    assert [(a.resource, a.group, a.namespace, a.name, a.subresource) for a in rbac.asked] == [
        ("serviceaccounts", "", "ci", "b", None), ("groups", "", None, "dev", None),
        ("userextras", "authentication.k8s.io", None, "view", "scopes"),
        ("uids", "authentication.k8s.io", None, "7", None)]


def test_a_refusal_names_the_first_thing_not_allowed() -> None:
    rbac = Allows(("impersonate", "users", "bob"))
    with pytest.raises(errors.ApiError) as caught:
        impersonate(ALICE, headers(("Impersonate-User", "bob"),
                                   ("Impersonate-Group", "system:masters")), rbac)
    assert (caught.value.code, caught.value.message) == (403, (
        'groups "system:masters" is forbidden: User "alice" cannot impersonate resource '
        '"groups" in API group "" at the cluster scope'))


def test_groups_without_a_user_are_a_bad_request() -> None:
    with pytest.raises(errors.ApiError) as caught:
        impersonate(ADMIN, headers(("Impersonate-Group", "dev")), None)
    assert caught.value.code == 400

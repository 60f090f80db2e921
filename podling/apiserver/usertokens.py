"""Authenticating user tokens (:mod:`podling.api.usertokens`): the bearer ``<id>.<secret>``
is looked up as the Secret ``kube-system/podling-token-<id>`` (the store's cached copy) and
authenticates as the user and groups it names until it expires or is deleted."""

from __future__ import annotations

from ..api import errors, usertokens
from .auth import User
from .registry.store import RegistryStore


class UserTokens:
    """A :class:`~.auth.TokenAuthenticator` lookup over the Secrets store."""

    def __init__(self, secrets: RegistryStore) -> None:
        self.secrets = secrets

    async def authenticate(self, token: str) -> User | None:
        match = usertokens.TOKEN_PATTERN.fullmatch(token)
        if match is None:
            return None
        try:
            secret = await self.secrets.lookup(usertokens.NAMESPACE,
                                               usertokens.secret_name(match.group(1)))
        except errors.ApiError as exc:
            if exc.code == 404:
                return None
            raise
        found = usertokens.owner(secret, token)
        if found is None:
            return None
        return User(found.user, found.groups)

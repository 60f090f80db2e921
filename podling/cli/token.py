"""``podling token``: user tokens (:mod:`podling.api.usertokens`), made through the API with
an admin's kubeconfig (``<data-dir>/kubeconfig`` unless ``--kubeconfig``).

    podling token create alice --group dev [--ttl 24h] [--write-kubeconfig alice.kubeconfig]
    podling token list
    podling token delete ID...

What a user may do is up to RBAC: ``kubectl create rolebinding … --user alice``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from ..api import usertokens
from ..client import ApiClient, ApiConnectionError, ApiError, ClientConfig, ConfigError
from .errors import CliError

SECRETS = "secrets"


def run(args: argparse.Namespace) -> int:
    path = args.kubeconfig or os.path.join(args.data_dir, "kubeconfig")
    try:
        config = ClientConfig.from_kubeconfig(path, request_timeout=30)
    except ConfigError as exc:
        raise CliError(f"podling token: {exc} (is `podling server` running? see --data-dir "
                       "or --kubeconfig)") from None
    command = {"create": _create, "list": _list, "ls": _list,
               "delete": _delete, "rm": _delete}[args.token_command]
    try:
        return asyncio.run(command(config, args))
    except ApiError as exc:
        raise CliError(f"podling token: {exc.message}") from None
    except (ApiConnectionError, OSError) as exc:
        raise CliError(f"podling token: cannot reach {config.server}: {exc}") from None


async def _create(config: ClientConfig, args: argparse.Namespace) -> int:
    user = args.user.strip()
    if not user:
        raise CliError("podling token create: the user name is empty", 2)
    token = usertokens.new_token()
    secret = usertokens.token_secret(token, user, list(args.group or []),
                                     ttl_seconds=args.ttl)
    async with ApiClient(config) as client:
        await client.create(SECRETS, secret, usertokens.NAMESPACE)
    if args.write_kubeconfig:
        _write_kubeconfig(args.write_kubeconfig, config, token, user)
    print(token)
    return 0


def _write_kubeconfig(path: str, config: ClientConfig, token: str, user: str) -> None:
    from ..apiserver.pki import kubeconfig_text
    from ..util.files import atomic_write
    ca_pem = config.ca_data or b""
    if not ca_pem and config.ca_file:
        with open(config.ca_file, "rb") as f:
            ca_pem = f.read()
    atomic_write(path, kubeconfig_text(config.server, ca_pem, token, user=user).encode(),
                 0o600)
    print(f"podling: kubeconfig for {user} written to {path}", file=sys.stderr)


async def _list(config: ClientConfig, args: argparse.Namespace) -> int:
    async with ApiClient(config) as client:
        found, _ = await client.list(SECRETS, usertokens.NAMESPACE)
    rows = [("ID", "USER", "GROUPS", "EXPIRES")]
    for secret in found:
        if secret.get("type") != usertokens.SECRET_TYPE:
            continue
        data = usertokens.decoded(secret)
        rows.append((data.get("token-id", "?"), data.get("user", ""),
                     data.get("groups") or "<none>", data.get("expiration") or "never"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


async def _delete(config: ClientConfig, args: argparse.Namespace) -> int:
    status = 0
    async with ApiClient(config) as client:
        for token_id in args.ids:
            token_id = token_id.partition(".")[0]  # a whole token names its id too
            try:
                await client.delete(SECRETS, usertokens.secret_name(token_id),
                                    usertokens.NAMESPACE)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                print(f"podling token delete: token {token_id!r} not found", file=sys.stderr)
                status = 1
                continue
            print(f"token {token_id} deleted")
    return status

"""``podling kubeconfig USER [--group G]… [--days N] [-o FILE]``: a kubeconfig for a user,
with a client certificate signed by the cluster CA (common name USER, one organization per
group). It runs where a server's data dir is (the CA key is needed); the server URL and
CA are those of that server's own kubeconfig. A certificate cannot be revoked before it
expires: for access that may have to end early, use ``podling token create``.
"""

from __future__ import annotations

import argparse
import os

import yaml

from .errors import CliError


def run(args: argparse.Namespace) -> int:
    from ..apiserver import pki
    from ..client import ClientConfig, ConfigError
    from ..util.files import atomic_write
    server_dir = os.path.join(args.data_dir, "server")
    user = args.user.strip()
    if not user:
        raise CliError("podling kubeconfig: the user name is empty", 2)
    try:
        server = ClientConfig.from_kubeconfig(os.path.join(args.data_dir, "kubeconfig")).server
        with open(os.path.join(server_dir, "ca.crt"), "rb") as f:
            ca_pem = f.read()
        client_pem = pki.issue_client_certificate(server_dir, user, list(args.group or []),
                                                  args.days)
    except (ConfigError, OSError, yaml.YAMLError) as exc:
        raise CliError(f"podling kubeconfig: cannot read the server's files in "
                       f"{args.data_dir} ({exc}); run it where `podling server` keeps its "
                       "data dir (--data-dir)") from None
    text = pki.kubeconfig_text(server, ca_pem, user=user, client_pem=client_pem)
    if args.out:
        atomic_write(args.out, text.encode(), 0o600)
    else:
        print(text, end="")
    return 0

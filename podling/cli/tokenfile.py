"""``--token`` / ``--token-file``, as ``podling agent`` and ``podling server`` read them."""

from __future__ import annotations

import argparse

from .errors import CliError, UsageError


def read_token(args: argparse.Namespace, command: str = "agent", *,
               required: bool = True) -> str:
    """``--token``, else the contents of ``--token-file`` ("" when neither is given and the
    token is not ``required``)."""
    if args.token:
        return str(args.token).strip()
    if not args.token_file:
        if not required:
            return ""
        raise UsageError(f"podling {command}: a token is required: --token or --token-file "
                         "(PODLING_TOKEN / PODLING_TOKEN_FILE)")
    try:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as exc:
        raise CliError(f"podling {command}: cannot read token file {args.token_file}: "
                       f"{exc.strerror}") from None
    if not token:
        raise CliError(f"podling {command}: token file {args.token_file} is empty")
    return token

"""``podling kubectl ARGS…``: exec the system kubectl with podling's kubeconfig.

Start-up matters here (``podling kubectl`` should cost what ``kubectl`` costs): this module
imports only the standard library's ``os`` and ``sys``, and the entry point
(:mod:`podling.cli.main`) dispatches to it before it imports anything else. Tests assert
that no engine module is loaded by the time kubectl is exec'd.

The kubeconfig kubectl gets (through ``KUBECONFIG``; a ``--kubeconfig`` among ARGS still
wins, as kubectl's own flag does):

1. ``<DIR>/kubeconfig`` when ``--data-dir DIR`` comes right after ``kubectl``;
2. else ``$KUBECONFIG`` when it is set (the user's choice is honoured);
3. else ``$PODLING_DATA_DIR/kubeconfig``;
4. else ``<data-dir>/kubeconfig`` with the ``data-dir:`` of the config file (``$PODLING_CONFIG``
   or ``/etc/podling/config.yaml``; read with a regular expression, not a YAML parser);
5. else ``/var/lib/podling/kubeconfig``.

kubectl runs even when that file does not exist (``podling kubectl --help``, ``version
--client`` and ``completion`` need no server); a one-line note on stderr says so for
commands that would talk to a server.
"""

from __future__ import annotations

import os
import sys

DEFAULT_DATA_DIR = "/var/lib/podling"  # = flags.DEFAULT_DATA_DIR (not imported: start-up)
DEFAULT_CONFIG = "/etc/podling/config.yaml"  # = flags.DEFAULT_CONFIG
_NO_SERVER_NEEDED = {"--help", "-h", "help", "version", "completion", "config", "explain",
                     "options", "plugin", "--client"}


def kubeconfig_for(args: list[str], environ: dict[str, str]) -> tuple[str, list[str]]:
    """(the KUBECONFIG value to run kubectl with, kubectl's own arguments)."""
    if args[:1] == ["--data-dir"] and len(args) >= 2:
        return os.path.join(args[1], "kubeconfig"), args[2:]
    if args[:1] and args[0].startswith("--data-dir="):
        return os.path.join(args[0].partition("=")[2], "kubeconfig"), args[1:]
    if environ.get("KUBECONFIG"):
        return environ["KUBECONFIG"], args
    data_dir = environ.get("PODLING_DATA_DIR") or _config_data_dir(
        environ.get("PODLING_CONFIG") or DEFAULT_CONFIG) or DEFAULT_DATA_DIR
    return os.path.join(data_dir, "kubeconfig"), args


def _config_data_dir(path: str) -> str:
    """The ``data-dir:`` of a config file ("" if none or unreadable): a top-level plain or
    quoted scalar, which is what k3s-style config files hold."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, ValueError):
        return ""
    import re  # only when there is a config file
    match = re.search(r"""^data-dir:[ \t]*("[^"\n]*"|'[^'\n]*'|[^#\n]*)""", text, re.M)
    return match.group(1).strip().strip("'\"") if match else ""


def which(name: str) -> str | None:
    """shutil.which without importing shutil (and its compression modules)."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def run(args: list[str]) -> int:
    """Replace this process with kubectl (returns only on an error: its exit status)."""
    kubectl = which("kubectl")
    if kubectl is None:
        print("podling: kubectl is not installed (apt-get install kubectl)", file=sys.stderr)
        return 127
    kubeconfig, rest = kubeconfig_for(args, dict(os.environ))
    paths = [p for p in kubeconfig.split(os.pathsep) if p]
    needs_server = rest and not _NO_SERVER_NEEDED & set(rest)
    if needs_server and not any(os.path.exists(p) for p in paths):
        print(f"podling: note: {kubeconfig} does not exist (is `podling server` running? "
              "see --data-dir / KUBECONFIG)", file=sys.stderr)
    os.environ["KUBECONFIG"] = kubeconfig
    sys.stdout.flush()
    os.execv(kubectl, [kubectl, *rest])
    return 0  # not reached

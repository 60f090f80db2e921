"""``podling demo``: start a throw-away cluster of a server and three nodes on this machine
(:mod:`.cluster`), tour the seed's examples with the real kubectl (:mod:`.tour`), then tear
everything down — also on Ctrl-C — unless ``--keep`` leaves the cluster for the reader.

Offline: the first node gets the demo images (busybox, nginx) imported from archives built
from Debian packages; the other nodes pull them from it (every node serves its store), and
no node is configured with any other registry."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

SEED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "examples", "seed")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every check of the tour passed; 1 when one failed or the cluster could
    not be started (a one-line reason on stderr)."""
    from .cluster import DemoCluster, DemoError
    from .images import demo_archives, write_air_gapped
    from .narrator import Narrator
    from .tour import run_tour
    out = Narrator()
    cluster = DemoCluster()
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C tears the cluster down even when a shell started us with SIGINT ignored
    # (a background job), which Python would otherwise keep ignoring
    signal.signal(signal.SIGINT, signal.default_int_handler)
    keep = False
    try:
        out.say(f"[bold]podling demo[/] — a throw-away cluster in {cluster.base}")
        images = demo_archives(args.images_dir or os.path.join(cluster.base, "images"))
        registries = args.registries or write_air_gapped(
            os.path.join(cluster.base, "registries.yaml"))
        cluster.prepare(images, registries=registries)
        cluster.start()
        failures = run_tour(cluster, out, args.seed_dir or SEED_DIR)
        keep = args.keep
        out.say(_summary(failures))
        if keep:
            out.say(_kept(cluster))
        return 1 if failures else 0
    except DemoError as exc:
        print(f"podling demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("podling demo: interrupted; removing the cluster", file=sys.stderr)
        return 130
    finally:
        if not keep:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop it
            cluster.stop()


def _interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def _summary(failures: int) -> str:
    if failures:
        return f"[red bold]{failures} check(s) failed[/] (the nodes' logs are kept only with --keep)"
    return "[green bold]every check passed[/]"


def _kept(cluster: Any) -> str:
    return (f"The cluster keeps running. Use it with:\n"
            f"  export KUBECONFIG={cluster.kubeconfig}\n"
            f"Stop it and remove everything it made with:\n  sh {cluster.write_down_script()}")

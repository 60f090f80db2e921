"""How ``podling demo`` prints: a rule per step with what to look at, each command with its
output, and a ✓ or ✗ per check (counted in :attr:`Narrator.failures`). Colours only on a
terminal (rich decides)."""

from __future__ import annotations

import shlex
from typing import Any


class Narrator:
    """Prints the tour on ``console`` (a rich Console; stdout by default)."""

    def __init__(self, console: Any = None) -> None:
        if console is None:
            from rich.console import Console
            console = Console(highlight=False)
        self.console = console
        self.failures = 0
        self._number = 0

    def step(self, title: str, look_at: str) -> None:
        self._number += 1
        self.console.rule(f"[bold]{self._number}. {title}", align="left")
        self.console.print(f"[italic]{look_at}")

    def command(self, argv: list[str], output: str) -> None:
        from rich.markup import escape
        self.console.print(f"[bold cyan]$ {escape(shlex.join(argv))}")
        if output.strip():
            self.console.print(escape(output.rstrip()), style="dim", soft_wrap=True)

    def check(self, ok: bool, text: str) -> None:
        from rich.markup import escape
        if not ok:
            self.failures += 1
        mark = "[green]✓" if ok else "[red]✗"
        self.console.print(f"{mark} {escape(text)}")

    def say(self, text: str) -> None:
        self.console.print(text)

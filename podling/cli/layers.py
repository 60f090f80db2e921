"""The argparse parser built from :mod:`podling.cli.flags`, and the layering of values:
flag > ``PODLING_<FLAG>`` environment variable > config file > default.

Every option is added with default ``None`` ("not given"); :func:`parse` then fills what
the command line left unset from the environment, the config file and the table's
defaults, converting each value with the option's type. Any bad value ends in a
:class:`UsageError` naming where it came from (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn, Sequence

from . import flags
from .errors import CliError, UsageError
from .flags import Command, Option

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and raise UsageError."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _help(opt: Option) -> str:
    if opt.hidden:
        return argparse.SUPPRESS
    text = opt.help.replace("%", "%%")
    if opt.kind == "value" and opt.default not in ("", None):
        default = oct(opt.default)[2:] if opt.type is flags.file_mode else opt.default
        text += f" (default: {default})"
    return f"{text} [${opt.env}]" if opt.layered else text


def add_option(parser: argparse.ArgumentParser, opt: Option, *, shared: bool = False) -> None:
    names = [opt.flag, *opt.aliases]
    kwargs: dict[str, Any] = {"dest": opt.dest, "help": _help(opt),
                              "default": argparse.SUPPRESS if shared else None}
    if opt.kind == "bool":
        kwargs["action"] = "store_true"
    else:
        kwargs.update(type=opt.type, metavar=opt.metavar or opt.dest.upper())
        if opt.kind == "list":
            kwargs["action"] = "extend"
        if opt.choices:
            kwargs.update(choices=opt.choices, metavar=None)
    parser.add_argument(*names, **kwargs)


def _add_command(commands: Any, command: Command, shared: Sequence[Option]) -> None:
    sub = commands.add_parser(command.name, help=command.help, description=command.help,
                              **command.extra)
    for opt in command.options:
        add_option(sub, opt)
    for opt in command.shared:
        add_option(sub, opt)
    for opt in shared:  # the parent's shared options, again after the subcommand's name
        add_option(sub, opt, shared=True)
    for pos in command.positionals:
        sub.add_argument(pos.name, help=pos.help, nargs=pos.nargs,
                         choices=pos.choices or None)
    if command.subcommands:
        nested = sub.add_subparsers(dest=f"{command.name.replace('-', '_')}_command",
                                    required=True, metavar="COMMAND")
        for child in command.subcommands:
            _add_command(nested, child, (*shared, *command.shared))


def build_parser() -> Parser:
    from .. import __version__
    parser = Parser(prog="podling", description="A Kubernetes-compatible pod engine. "
                    "Every flag can also be set as PODLING_<FLAG> in the environment or "
                    f"as a key of the config file ({flags.DEFAULT_CONFIG}).")
    parser.add_argument("--version", "-v", action="version",
                        version=f"podling version v{__version__} (python "
                        f"{sys.version.split()[0]})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in flags.COMMANDS:
        _add_command(commands, command, ())
    commands.add_parser("kubectl", help="run kubectl against this podling (KUBECONFIG "
                        "honoured)", add_help=False)
    return parser


# ---- resolution --------------------------------------------------------------------------

def command_options(args: argparse.Namespace) -> list[Option]:
    """The options of the command ``args`` was parsed for (its parents' shared ones too)."""
    by_name = {c.name: c for c in flags.COMMANDS}
    command = by_name[args.command]
    found = [*command.options, *command.shared]
    sub_name = getattr(args, f"{command.name}_command", None)
    for sub in command.subcommands:
        if sub.name == sub_name or sub_name in sub.extra.get("aliases", ()):
            found += [*sub.options, *sub.shared]
    return found


def config_path(argv: Sequence[str], environ: dict[str, str]) -> tuple[str, bool]:
    """The config file to read and whether it was asked for explicitly (a missing explicit
    file is an error; a missing /etc/podling/config.yaml is not)."""
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            return argv[i + 1], True
        if arg.startswith("--config="):
            return arg.partition("=")[2], True
    if environ.get("PODLING_CONFIG"):
        return environ["PODLING_CONFIG"], True
    return flags.DEFAULT_CONFIG, False


def _loader() -> Any:
    """A SafeLoader that keeps numbers and booleans as the text written (k3s' keys are flag
    values: ``write-kubeconfig-mode: 0644`` must stay "0644", not YAML 1.1's octal 420)."""
    import yaml

    class FlagLoader(yaml.SafeLoader):
        pass

    for tag in ("int", "float", "bool"):
        FlagLoader.add_constructor(f"tag:yaml.org,2002:{tag}",
                                   lambda loader, node: loader.construct_scalar(node))
    return FlagLoader


def read_config(path: str, explicit: bool) -> dict[str, Any]:
    """The config file's keys; {} when the default file does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if explicit:
            raise CliError(f"podling: config file {path} does not exist") from None
        return {}
    except OSError as exc:
        raise CliError(f"podling: cannot read config file {path}: {exc.strerror}") from None
    import yaml
    try:
        data = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"podling: {path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"podling: {path}: expected a mapping of flag names to values")
    known = flags.all_options()
    for key in data:
        if str(key) not in known:
            raise UsageError(f"podling: {path}: unknown key {key!r}")
    return {str(k): v for k, v in data.items()}


def convert(opt: Option, raw: Any, source: str) -> Any:
    """``raw`` (a string from the environment, or any YAML value) as the option's value."""
    try:
        if opt.kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise argparse.ArgumentTypeError(f"expected true or false, got {raw!r}")
        if opt.kind == "list":
            items = raw if isinstance(raw, list) else [raw]
            return [x for item in items for x in opt.type(str(item))]
        if isinstance(raw, (dict, list)) or raw is None:
            raise argparse.ArgumentTypeError(f"expected one value, got {raw!r}")
        value = opt.type(str(raw))
        if opt.choices and value not in opt.choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice {value!r} (choose from {', '.join(opt.choices)})")
        return value
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise UsageError(f"podling: {source}: {exc}") from None


def _layered(opt: Option, environ: dict[str, str], file: dict[str, Any], path: str) -> Any:
    if not opt.layered:
        return opt.default
    for name in (opt.env, *opt.env_aliases):
        if name in environ:
            return convert(opt, environ[name], name)
    for name in (opt.flag, *opt.aliases):
        if name.startswith("--") and name[2:] in file:
            return convert(opt, file[name[2:]], f"{path}: {name[2:]}")
    return [] if opt.kind == "list" else opt.default


def parse(argv: Sequence[str], environ: dict[str, str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` and fill every option the command line left unset (see the module
    docstring). ``args.config`` is the config file read (or the default path)."""
    environ = dict(os.environ if environ is None else environ)
    args = build_parser().parse_args(list(argv))
    path, explicit = config_path(argv, environ)
    file = read_config(path, explicit) if args.command != "completion" else {}
    for opt in command_options(args):
        if getattr(args, opt.dest, None) is None:
            setattr(args, opt.dest, _layered(opt, environ, file, path))
    args.config = path
    return args

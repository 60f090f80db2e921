"""The command line's flags: one table, each flag settable by flag > PODLING_<FLAG> >
config file > default, with one-line usage errors naming where a bad value came from."""

from __future__ import annotations

import argparse

import pytest

from podling.cli import flags, layers
from podling.cli.errors import CliError, UsageError


def parse(argv, env=None, tmp_path=None, config=None):
    environ = dict(env or {})
    if tmp_path is not None:  # never read /etc/podling/config.yaml
        path = tmp_path / "config.yaml"
        if config is not None:
            path.write_text(config)
        environ.setdefault("PODLING_CONFIG", str(path))
    return layers.parse(argv, environ)


def test_defaults_come_from_the_table(tmp_path):
    args = parse(["server"], tmp_path=tmp_path, config="")
    assert (args.data_dir, args.port, args.bind_address) == ("/var/lib/podling", 6443,
                                                             "127.0.0.1")
    assert args.node_label == [] and args.node_taint == [] and args.disable_agent is False
    assert args.write_kubeconfig_mode == 0o600


def test_flag_beats_environment_beats_file_beats_default(tmp_path):
    config = "port: 7000\nbind-address: 127.0.0.2\nlog-level: debug\n"
    env = {"PODLING_PORT": "7001"}
    args = parse(["server", "--port", "7002"], env, tmp_path, config)
    assert args.port == 7002 and args.bind_address == "127.0.0.2"
    assert args.log_level == "DEBUG"
    assert parse(["server"], env, tmp_path, config).port == 7001
    assert parse(["server"], {}, tmp_path, config).port == 7000


def test_config_path_from_flag_and_environment(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("data-dir: /from-a\n")
    b.write_text("data-dir: /from-b\n")
    assert parse(["server", "--config", str(a)], {"PODLING_CONFIG": str(b)}).data_dir == "/from-a"
    assert parse(["server"], {"PODLING_CONFIG": str(b)}).data_dir == "/from-b"
    assert parse(["server", f"--config={a}"], {}).data_dir == "/from-a"


def test_repeatable_labels_and_taints_with_comma_forms(tmp_path):
    args = parse(["server", "--node-label", "a=1", "--node-labels", "b=2,c=3",
                  "--node-taint", "dedicated=gpu:NoSchedule", "--node-taint", "x:NoExecute"],
                 tmp_path=tmp_path, config="")
    assert args.node_label == [("a", "1"), ("b", "2"), ("c", "3")]
    assert args.node_taint == [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                               {"key": "x", "effect": "NoExecute"}]
    env = parse(["agent"], {"PODLING_NODE_LABEL": "e=1,f=2"}, tmp_path, "")
    assert env.node_label == [("e", "1"), ("f", "2")]
    old = parse(["agent"], {"PODLING_NODE_LABELS": "g=1"}, tmp_path, "")
    assert old.node_label == [("g", "1")]
    file = parse(["agent"], {}, tmp_path, "node-label: [h=1, i=2]\nnode-taint: k=v:NoSchedule\n")
    assert file.node_label == [("h", "1"), ("i", "2")]
    assert file.node_taint == [{"key": "k", "value": "v", "effect": "NoSchedule"}]


@pytest.mark.parametrize("text", ["0644", "'0644'", "644"])
def test_file_values_are_flag_text_not_yaml_numbers(tmp_path, text):
    args = parse(["server"], {}, tmp_path, f"write-kubeconfig-mode: {text}\n")
    assert args.write_kubeconfig_mode == 0o644
    with pytest.raises(UsageError, match="invalid port '0x10'"):
        parse(["server", "--write-kubeconfig-mode", "600"], {}, tmp_path, "port: 0x10\n")


def test_bool_flags_from_environment_and_file(tmp_path):
    assert parse(["server"], {"PODLING_DISABLE_AGENT": "true"}, tmp_path, "").disable_agent
    assert not parse(["server"], {"PODLING_DISABLE_AGENT": "0"}, tmp_path,
                     "disable-agent: true\n").disable_agent
    assert parse(["server"], {}, tmp_path, "disable-agent: true\n").disable_agent


def test_one_off_actions_are_command_line_only(tmp_path):
    args = parse(["purge"], {"PODLING_ALL": "1", "PODLING_DRY_RUN": "1"}, tmp_path, "")
    assert args.all is False and args.dry_run is False
    with pytest.raises(UsageError, match="unknown key 'purge'"):
        parse(["server"], {}, tmp_path, "purge: true\n")


@pytest.mark.parametrize("argv", [
    ["image", "pull", "--data-dir", "/x", "busybox"],
    ["image", "--data-dir", "/x", "pull", "busybox"],
    ["image", "pull", "busybox", "-d", "/x"],
])
def test_data_dir_before_or_after_the_image_subcommand(tmp_path, argv):
    args = parse(argv, {"PODLING_DATA_DIR": "/env"}, tmp_path, "")
    assert args.data_dir == "/x" and args.ref == "busybox"


def test_data_dir_after_subcommand_falls_back_to_environment(tmp_path):
    assert parse(["image", "ls"], {"PODLING_DATA_DIR": "/env"}, tmp_path, "").data_dir == "/env"


@pytest.mark.parametrize("argv, env, config, message", [
    (["server", "--port", "abc"], {}, "",
     "argument --port/--https-listen-port: invalid port 'abc'"),
    (["server", "--cluster-cidr", "10.0.0.0/28"], {}, "", "is smaller than a /24"),
    (["server"], {"PODLING_PORT": "99999"}, "", "PODLING_PORT: port 99999 is not in 0-65535"),
    (["server"], {"PODLING_DISABLE_AGENT": "maybe"}, "", "PODLING_DISABLE_AGENT: expected true"),
    (["server"], {}, "history: -3\n", "config.yaml: history: -3 is not positive"),
    (["server"], {}, "datastore: mysql\n", "datastore: invalid choice 'mysql'"),
    (["server"], {}, "etcd-endpoints: [etcd:2379]\n",
     "etcd-endpoints: expected http(s)://host:port, got 'etcd:2379'"),
    (["server"], {}, "node-lables: a=b\n", "unknown key 'node-lables'"),
    (["server"], {}, "port: [1, 2]\n", "port: expected one value"),
    (["server"], {}, "port:\n", "port: expected one value, got None"),
    (["server"], {}, "- a\n", "expected a mapping"),
    (["server"], {}, "a: [\n", "not valid YAML"),
    (["agent", "--node-taint", "k=v:Sometimes"], {}, "", "expected key[=value]:NoSchedule"),
    (["server", "--write-kubeconfig-mode", "rw"], {}, "", "invalid file mode 'rw'"),
    (["server", "--bogus"], {}, "", "unrecognized arguments: --bogus"),
])
def test_bad_values_are_one_line_usage_errors(tmp_path, argv, env, config, message):
    with pytest.raises(UsageError) as caught:
        parse(argv, env, tmp_path, config)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and caught.value.status == 2


def test_an_explicit_config_file_must_exist_the_default_need_not(tmp_path):
    with pytest.raises(CliError, match="config file .*missing.yaml does not exist"):
        layers.parse(["server"], {"PODLING_CONFIG": str(tmp_path / "missing.yaml")})
    path, explicit = layers.config_path(["server"], {})
    assert (path, explicit) == (flags.DEFAULT_CONFIG, False)


def _table(commands, prog="podling", shared=()):
    """(prog, Option) for every option the table gives each command."""
    for command in commands:
        name = f"{prog} {command.name}"
        for opt in (*command.options, *command.shared, *shared):
            yield name, opt
        yield from _table(command.subcommands, name, (*shared, *command.shared))


def _parsers(parser: argparse.ArgumentParser):
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_flag_has_help_and_shows_its_default_and_variable():
    parsers = dict(_parsers(layers.build_parser()))
    seen = 0
    for prog, opt in _table(flags.COMMANDS):
        action = next(a for a in parsers[prog]._actions if opt.flag in a.option_strings)
        if opt.hidden:
            assert action.help == argparse.SUPPRESS
            continue
        seen += 1
        assert len(opt.help) > 10 and action.help.startswith(opt.help), (prog, opt.flag)
        if opt.kind == "value" and opt.default not in ("", None):
            assert "(default: " in action.help, (prog, opt.flag)
        assert (f"[${opt.env}]" in action.help) == opt.layered, (prog, opt.flag)
    assert seen > 40


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as caught:
        layers.build_parser().parse_args(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("podling version v0.1.0")

"""`podling purge --dry-run` lists what is there and removes nothing; a real purge prints
the same list as its summary (runtime and network parts stubbed: they have their own tests)."""

from __future__ import annotations

from podling.cli import purge as purge_cli
from podling.cli.main import main


def make_leftovers(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    (data / "agent" / "cni" / "results").mkdir(parents=True)
    (data / "agent" / "cni" / "results" / "podling-x-c1-eth0").write_text("{}")
    (run / "runtime" / "runc" / "c1").mkdir(parents=True)
    (run / "runtime" / "runc" / "c2").mkdir(parents=True)
    (data / "server" / "node-tokens").mkdir(parents=True)
    (data / "server" / "node-tokens" / "n1").write_text("hash")
    return data, run


def flags(tmp_path, data, run):
    (tmp_path / "config.yaml").touch()
    return ["--config", str(tmp_path / "config.yaml"), "--data-dir", str(data), "--run-dir",
            str(run), "--node-name", "n1", "--bridge-name", "podlingtest9"]


EXPECTED = ["2 runc container(s) under {run}/runtime/runc",
            "1 pod network attachment(s) (CNI DEL)",
            "directory {data}/agent", "directory {run}",
            "node token record {data}/server/node-tokens/n1"]


def test_dry_run_lists_and_removes_nothing(tmp_path, capsys):
    data, run = make_leftovers(tmp_path)
    assert main(["purge", "--dry-run", *flags(tmp_path, data, run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["podling purge: would remove:",
                   *(f"  {line.format(run=run, data=data)}" for line in EXPECTED)]
    assert (run / "runtime" / "runc" / "c1").is_dir()
    assert (data / "server" / "node-tokens" / "n1").exists()
    assert main(["purge", "--dry-run", "--all", *flags(tmp_path, data, run)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"  directory {data} (images and API data)"


def test_purge_prints_what_it_removed_then_nothing(tmp_path, capsys, monkeypatch):
    async def nothing(*args, **kwargs):
        return []
    monkeypatch.setattr(purge_cli, "purge_runtime", nothing)
    monkeypatch.setattr(purge_cli.CniNetwork, "purge", nothing)
    data, run = make_leftovers(tmp_path)
    assert main(["purge", *flags(tmp_path, data, run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "podling purge: removed:"
    assert "  directory {data}/agent".format(data=data) in out
    assert not (data / "agent").exists() and not run.exists()
    assert main(["purge", *flags(tmp_path, data, run)]) == 0
    assert capsys.readouterr().out == "podling purge: removed nothing (already clean)\n"

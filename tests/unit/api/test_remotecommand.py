"""Wire facts of exec / attach: options from a query, the statuses that end a session."""

from __future__ import annotations

import json

import pytest

from podling.api import remotecommand as rc


@pytest.mark.parametrize("query,commands,expected", [
    ({"container": "c", "stdout": "true", "stderr": "true"}, ["ls", "-l"],
     rc.StreamOptions("c", ("ls", "-l"), False, True, True, False)),
    ({"stdin": "1", "stdout": "True", "stderr": "true", "tty": "true"}, ["sh"],
     rc.StreamOptions("", ("sh",), True, True, False, True)),  # a tty folds stderr in
    ({"stdin": "yes", "stdout": "false"}, [], rc.StreamOptions()),
])
def test_options_from_query(query, commands, expected) -> None:
    assert rc.StreamOptions.from_query(query, commands) == expected


def test_options_round_trip_through_the_node_query() -> None:
    options = rc.StreamOptions("c", ("sh", "-c", "exit 3"), True, True, True, False)
    pairs = options.query()
    query = {k: v for k, v in pairs if k != "command"}
    again = rc.StreamOptions.from_query({**query, "container": "c"},
                                        [v for k, v in pairs if k == "command"])
    assert again == options


def test_exit_code_status_is_the_kubelets() -> None:
    status = rc.exit_code_status(["sh", "-c", "exit 3"], 3)
    assert status == {
        "metadata": {}, "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    assert json.loads(rc.encode_status(status)) == status


def test_status_text_for_old_protocols() -> None:
    assert rc.status_text(rc.success_status()) == ""
    assert rc.status_text(rc.failure_status("boom")) == "boom"


@pytest.mark.parametrize("data,expected", [
    (b'{"Width":80,"Height":24}\n', (80, 24)),
    (rc.encode_resize(100, 30), (100, 30)),
    (b'{"Width":-1,"Height":24}', None),
    (b'{"Width":80}', None),
    (b"garbage", None),
    (b'["x"]', None),
])
def test_parse_resize(data, expected) -> None:
    assert rc.parse_resize(data) == expected

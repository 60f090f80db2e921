"""Termination messages from the message file or, on failure, the log tail."""

import pytest

from podling.agent.kuberuntime import labels
from podling.agent.kuberuntime.termination import (create_message_file, message_file,
                                                  termination_message, with_messages)
from podling.api.views import ContainerView, PodView
from podling.runtime.interface import ContainerState, ContainerStatus


def status(tmp_path, *, exit_code=1, restart=0, state=ContainerState.EXITED, log=""):
    log_path = tmp_path / "c.log"
    log_path.write_text(log)
    return ContainerStatus(id="x", sandbox_id="s", name="c", attempt=restart, state=state,
                           created_at=1.0, exit_code=exit_code, log_path=str(log_path),
                           labels={labels.CONTAINER_NAME: "c"},
                           annotations={labels.RESTART_COUNT: str(restart)})


def write_message(tmp_path, text, restart=0):
    path = message_file(str(tmp_path), "c", restart)
    import os
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


LOG = ("2026-11-27T12:00:00.0Z stdout F first\n"
       "2026-11-27T12:00:01.0Z stderr P par\n"
       "2026-11-27T12:00:01.0Z stderr F tial\n")


@pytest.mark.parametrize("policy,exit_code,file_text,expected", [
    ("File", 1, "bye", "bye"),
    ("File", 1, "", ""),  # File policy never reads the log
    ("FallbackToLogsOnError", 1, "", "first\npartial\n"),
    ("FallbackToLogsOnError", 0, "", ""),  # only on error
    ("FallbackToLogsOnError", 1, "from file", "from file"),  # the file wins
])
def test_termination_message(tmp_path, policy, exit_code, file_text, expected):
    write_message(tmp_path, file_text)
    spec = ContainerView.from_obj({"name": "c", "terminationMessagePolicy": policy})
    assert termination_message(str(tmp_path), spec, status(tmp_path, exit_code=exit_code,
                                                           log=LOG)) == expected


def test_file_is_capped_and_read_for_the_right_restart(tmp_path):
    write_message(tmp_path, "old", restart=0)
    write_message(tmp_path, "x" * 5000, restart=1)
    spec = ContainerView.from_obj({"name": "c", "terminationMessagePolicy": "File"})
    assert termination_message(str(tmp_path), spec, status(tmp_path, restart=1)) == "x" * 4096


def test_running_containers_are_left_alone(tmp_path):
    write_message(tmp_path, "bye")
    pod = PodView.from_obj(
        {"spec": {"containers": [{"name": "c", "terminationMessagePolicy": "File"}]}})
    running = status(tmp_path, state=ContainerState.RUNNING)
    exited = status(tmp_path)
    assert with_messages(str(tmp_path), pod, [running])[0].message == ""
    assert with_messages(str(tmp_path), pod, [exited])[0].message == "bye"


def test_message_file_is_created_empty_and_writable_by_any_user(tmp_path):
    import os
    import stat
    old = os.umask(0o077)
    try:
        path = create_message_file(str(tmp_path), "c", 2)
    finally:
        os.umask(old)
    assert path == message_file(str(tmp_path), "c", 2)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    assert os.path.getsize(path) == 0

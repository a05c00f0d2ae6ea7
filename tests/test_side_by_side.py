"""What the runner tells running kernels: the common run's mark and the share of the cores."""

from __future__ import annotations

import json
import threading
import time

import torch

from llmrec import side_by_side
from llmrec.side_by_side import (
    RUNNING,
    follow_share,
    is_running,
    running,
    wait_for_common,
    write_share,
)


def test_a_marked_run_is_waited_for_until_its_chapters_end(tmp_path):
    run_dir = tmp_path / "common"
    assert not is_running(run_dir) and wait_for_common(run_dir, say=lambda _: None) == 0
    said = []
    with running(run_dir) as mark:
        assert mark == run_dir / RUNNING and is_running(run_dir)
        done = threading.Event()

        def waiter():
            said.append(wait_for_common(run_dir, poll=0.01, say=said.append))
            done.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.2)
        assert not done.is_set()  # still waiting while the mark stands
    thread.join(5)
    assert done.is_set() and not (run_dir / RUNNING).exists()
    assert said[0].startswith("waiting for the baselines of common") and said[1] >= 0.2


def test_a_mark_left_by_a_dead_process_is_ignored(tmp_path):
    run_dir = tmp_path / "common"
    run_dir.mkdir()
    (run_dir / RUNNING).write_text(json.dumps({"pid": 2**22 + 12345}))  # above Linux's pid_max
    assert not is_running(run_dir)
    (run_dir / RUNNING).write_text("half a file")
    assert not is_running(run_dir)


def test_a_running_loop_takes_the_share_the_runner_writes(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    share = tmp_path / ".threads"
    try:
        monkeypatch.delenv(side_by_side.THREADS_FILE_ENV, raising=False)
        assert follow_share() is None  # no runner: nothing to follow
        monkeypatch.setenv(side_by_side.THREADS_FILE_ENV, str(share))
        assert follow_share() is None  # the runner has written nothing yet
        torch.set_num_threads(2)
        write_share(share, 1)
        assert follow_share() == 1 and torch.get_num_threads() == 1
        assert follow_share() is None  # unchanged file: not read again
        time.sleep(0.01)
        write_share(share, 2)
        assert follow_share() == 2 and torch.get_num_threads() == 2
        assert not share.with_name(".threads.tmp").exists()
    finally:
        torch.set_num_threads(before)

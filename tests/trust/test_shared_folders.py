"""Runs that share a folder: a second run into a folder in use is refused with one line,
a lock left by a dead process is taken over, and only temporaries of processes that are
gone are cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch  # noqa: F401 - imported now, so the second run starts within a second
import pytest

from slidemap.errors import OutputError
from slidemap.io.atomic import TMP_PREFIX, clean_stale_temporaries
from slidemap.io.outputs import LOCK, OutputFolder
from tests.trust.conftest import (
    TORCH_ENGINE,
    assert_one_line_error,
    final_files,
    run_cli,
    start_cli,
    temporaries,
    wait_for,
    write_scene,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_second_run_into_a_folder_in_use_is_refused_and_the_first_completes(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene", 768)
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem, "--out", out,
            "--window", "128", *TORCH_ENGINE]
    first = start_cli(argv)
    try:
        wait_for(lambda: bool(temporaries(out)), first, timeout=600, what="the first run's temporaries")
        second = run_cli(capsys, argv)
        assert_one_line_error(second, "out", "in use", str(first.pid))
        assert temporaries(out), "the refused run removed the first run's temporaries"
    except BaseException:
        first.kill()
        raise
    assert first.wait(timeout=600) == 0, first.stderr.read().decode() if first.stderr else ""
    assert {"probability.tif", "mask.tif", "summary.json"} <= set(final_files(out))
    assert not (out / LOCK).exists(), "the lock outlived its run"


def test_a_lock_left_by_a_dead_process_is_taken_over(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": _dead_pid(), "host": "here", "command": "predict"}))
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, *TORCH_ENGINE])
    assert result.code == 0, result.err
    assert "summary.json" in final_files(out) and not (out / LOCK).exists()


def test_only_temporaries_of_processes_that_are_gone_are_removed(
    tmp_path: Path, scene_checkpoint: Path, live_pid: int, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out"
    out.mkdir()
    alive = out / f"{TMP_PREFIX}{live_pid}-0a1b2c3d-probability.tif"
    dead = out / f"{TMP_PREFIX}{_dead_pid()}-0a1b2c3d-probability.tif"
    for path in (alive, dead):
        path.write_bytes(b"II*\x00 half a probability map")
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, *TORCH_ENGINE])
    assert result.code == 0, result.err
    assert alive.exists(), "a live process's temporary was deleted"
    assert not dead.exists(), "a dead process's temporary was left"


def test_clean_stale_temporaries_keeps_a_live_writers_file(tmp_path: Path, live_pid: int) -> None:
    alive = tmp_path / f"{TMP_PREFIX}{live_pid}-00000000-mask.tif"
    mine = tmp_path / f"{TMP_PREFIX}{os.getpid()}-00000000-mask.tif"
    dead = tmp_path / f"{TMP_PREFIX}{_dead_pid()}-00000000-mask.tif"
    legacy = tmp_path / f"{TMP_PREFIX}abc123.tif"  # an older slidemap's name: no process id
    for path in (alive, mine, dead, legacy):
        path.write_bytes(b"x")
    assert clean_stale_temporaries(tmp_path) == 2
    assert alive.exists() and mine.exists() and not dead.exists() and not legacy.exists()


def test_one_folder_one_holder_even_within_a_process(tmp_path: Path) -> None:
    with OutputFolder(tmp_path / "out", "first"):
        with pytest.raises(OutputError, match="in use by another slidemap run"):
            OutputFolder(tmp_path / "out", "second").__enter__()
    with OutputFolder(tmp_path / "out", "third"):  # released: free again
        pass

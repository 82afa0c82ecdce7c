"""``slidemap crossval`` on two tiny fake areas: every area held out once per seed, trained
on the others only, scored on every pixel of the held-out one; the table and the reuse of
finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from rgbd_fakes import PATCH_PX

from slidemap.cli import main
from slidemap.workflows.crossval import bootstrap_crossvals, load_crossval
from slidemap.workflows.evaluate import evaluate_checkpoint

# the fake areas' patches are 32 px at a 64 px grid: blocks of 64 px hold one patch each
TINY = ["--set", "data.batch_size=4", "--set", "model.options.base_channels=4",
        "--set", "model.options.depth=2", "--set", "trainer.max_epochs=1",
        "--set", "data.holdout.block_px=64"]


@pytest.fixture(scope="module")
def crossval_out(rgbd_areas: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crossval") / "cv"
    area_a, area_b = rgbd_areas
    status = main(["crossval", "--config", "configs/rgbd/unet.yaml", "--areas", str(area_a),
                   str(area_b), "--seeds", "2", "--out", str(out), *TINY])
    assert status == 0
    return out


def test_every_area_is_held_out_once_per_seed_and_never_trained_on(
        crossval_out: Path, rgbd_areas: tuple[Path, Path]) -> None:
    area_a, area_b = rgbd_areas
    for held, other in (("area_A", area_b), ("area_B", area_a)):
        for seed in (0, 1):
            run = crossval_out / "runs" / held / f"seed{seed}"
            assert (run / "best.ckpt").is_file() and (run / "last.ckpt").is_file()
            config = yaml.safe_load((run / "config.yaml").read_text())
            assert config["data"]["train_path"] == str(other.resolve())
            assert config["data"]["val_path"] is None and config["data"]["root"] is None
            assert config["trainer"]["seed"] == seed


def test_held_out_scores_are_those_of_the_run_checkpoint_on_the_held_out_area(
        crossval_out: Path, rgbd_areas: tuple[Path, Path]) -> None:
    result = load_crossval(crossval_out)
    assert result.areas == ["area_A", "area_B"] and result.seeds == [0, 1]
    run = result.run("area_B", 1)
    again = evaluate_checkpoint(run.run_dir / "best.ckpt", rgbd_areas[1], split=None)
    assert run.metrics["f1"] == pytest.approx(again.metrics["f1"])
    assert run.metrics["n_pixels"] == 6 * PATCH_PX * PATCH_PX  # every pixel of area B
    assert len(run.patch_counts) == 6
    # the threshold was chosen on held-out blocks of area A, and is the checkpoint's
    chosen = torch.load(run.run_dir / "best.ckpt", weights_only=True)["slidemap"]["threshold"]
    assert run.metrics["threshold"] == pytest.approx(chosen)


def test_table_gives_mean_and_std_over_seeds_per_area_and_over_areas(crossval_out: Path) -> None:
    table = json.loads((crossval_out / "crossval.json").read_text())
    result = load_crossval(crossval_out)
    row = table["summary"]["area_A"]
    values = [result.run("area_A", s).metrics["f1"] for s in (0, 1)]
    assert row["f1"]["values"] == pytest.approx(values)
    assert row["f1"]["mean"] == pytest.approx(sum(values) / 2)
    assert row["f1"]["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    overall = table["summary"]["mean over areas"]["f1"]
    per_seed = [(result.run("area_A", s).metrics["f1"] + result.run("area_B", s).metrics["f1"]) / 2
                for s in (0, 1)]
    assert overall["values"] == pytest.approx(per_seed)
    markdown = (crossval_out / "crossval.md").read_text()
    assert "| area_A | area_B | 2 |" in markdown and "mean over areas" in markdown
    assert f"{row['f1']['mean']:.3f} ± {row['f1']['std']:.3f}" in markdown


def test_a_second_call_reuses_finished_runs_and_refuses_another_experiment(
        crossval_out: Path, rgbd_areas: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = crossval_out / "runs" / "area_A" / "seed0" / "best.ckpt"
    stamp = checkpoint.stat().st_mtime_ns
    # a run stored before a setting existed (here: without data.augmentation) is the same
    # experiment when the setting is at its default
    stored = checkpoint.parent / "config.yaml"
    raw = yaml.safe_load(stored.read_text())
    del raw["data"]["augmentation"]
    stored.write_text(yaml.safe_dump(raw))
    args = ["crossval", "--config", "configs/rgbd/unet.yaml", "--areas", *map(str, rgbd_areas),
            "--seeds", "2", "--out", str(crossval_out), *TINY]
    assert main(args) == 0
    assert checkpoint.stat().st_mtime_ns == stamp  # not trained again
    assert "reusing" in capsys.readouterr().err
    assert main([*args, "--set", "optim.lr=0.1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another experiment" in err[0] and "seed0" in err[0]


def test_crossval_refuses_a_single_area_and_a_missing_folder(
        rgbd_areas: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["crossval", "--config", "configs/rgbd/unet.yaml", "--out", str(tmp_path / "cv"), *TINY]
    assert main([*base, "--areas", str(rgbd_areas[0])]) != 0
    assert "at least two areas" in capsys.readouterr().err
    assert main([*base, "--areas", str(rgbd_areas[0]), str(tmp_path / "nowhere")]) != 0
    err = capsys.readouterr().err
    assert "nowhere" in err and "does not exist" in err
    assert not (tmp_path / "cv" / "runs").exists()


def test_paired_intervals_need_the_same_areas_and_patches(crossval_out: Path) -> None:
    import copy

    from slidemap.errors import ConfigError

    result = load_crossval(crossval_out)
    same = bootstrap_crossvals({"x": result, "y": result})
    assert same.differences[("x", "y")].estimate == 0.0
    fewer = copy.deepcopy(result)
    for run in fewer.runs:
        run.patch_counts.pop(next(iter(run.patch_counts)))
    with pytest.raises(ConfigError, match="same"):
        bootstrap_crossvals({"x": result, "y": fewer})


def test_crossval_never_writes_into_an_area_and_names_a_broken_result(
        crossval_out: Path, rgbd_areas: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in rgbd_areas[0].iterdir())
    assert main(["crossval", "--config", "configs/rgbd/unet.yaml", "--areas", *map(str, rgbd_areas),
                 "--out", str(rgbd_areas[0] / "cv"), *TINY]) != 0
    assert "inside an area" in capsys.readouterr().err
    assert sorted(p.name for p in rgbd_areas[0].iterdir()) == before
    broken = crossval_out / "runs" / "area_B" / "seed0" / "heldout.json"
    original = broken.read_text()
    try:
        broken.write_text('{"area": "area_B"')  # truncated by hand
        assert main(["crossval", "--config", "configs/rgbd/unet.yaml", "--areas",
                     *map(str, rgbd_areas), "--seeds", "2", "--out", str(crossval_out), *TINY]) != 0
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "heldout.json" in err and "delete it" in err
    finally:
        broken.write_text(original)


def test_a_foreign_table_in_the_output_folder_is_never_replaced(
        rgbd_areas: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cv"
    out.mkdir()
    mine = out / "crossval.md"
    mine.write_text("my notes\n")
    assert main(["crossval", "--config", "configs/rgbd/unet.yaml", "--areas", *map(str, rgbd_areas),
                 "--out", str(out), *TINY]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "crossval.md" in err[0] and "not written by slidemap" in err[0]
    assert mine.read_text() == "my notes\n" and not (out / "runs").exists()

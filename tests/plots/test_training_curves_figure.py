"""Training-curve figure (paper Fig. 4, 7, 8)."""

from __future__ import annotations

import math

from matplotlib.figure import Figure

from slidemap.plots.curves import plot_training_curves


def _history(n_epochs: int, offset: float) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            **{
                f"{split}_{m}": offset + e / 10 + 0.01 * i + (0.005 if split == "val" else 0.0)
                for split in ("train", "val")
                for i, m in enumerate(("loss", "precision", "recall", "f1"))
            },
        }
        for e in range(n_epochs)
    ]


def test_grid_has_one_axes_per_metric_with_train_solid_and_val_dashed() -> None:
    fig = plot_training_curves({"UNet": _history(5, 0.0), "UNet-CBAM": _history(7, 0.1)})
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == [
        "(a) Loss",
        "(b) Precision",
        "(c) Recall",
        "(d) F1 score",
    ]
    for ax in fig.axes:
        lines = {line.get_label(): line for line in ax.lines}
        assert set(lines) == {"UNet train", "UNet val", "UNet-CBAM train", "UNet-CBAM val"}
        assert lines["UNet train"].get_linestyle() == "-"
        assert lines["UNet val"].get_linestyle() == "--"
        assert lines["UNet train"].get_color() == lines["UNet val"].get_color()
        assert lines["UNet train"].get_color() != lines["UNet-CBAM train"].get_color()
        assert len(lines["UNet-CBAM val"].get_xdata()) == 7
    # the plotted values are the history's, per metric and split, against the epoch
    history = {"UNet": _history(5, 0.0), "UNet-CBAM": _history(7, 0.1)}
    for ax, metric in zip(fig.axes, ("loss", "precision", "recall", "f1"), strict=True):
        assert ax.get_xlabel() == "Epoch"
        for model, records in history.items():
            for split in ("train", "val"):
                (line,) = [line for line in ax.lines if line.get_label() == f"{model} {split}"]
                assert list(line.get_xdata()) == [r["epoch"] for r in records]
                assert list(line.get_ydata()) == [r[f"{split}_{metric}"] for r in records]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "UNet-CBAM val" in legend


def test_missing_values_leave_gaps_and_unrecorded_series_are_skipped() -> None:
    records = [{"epoch": 0, "train_loss": 1.0}, {"epoch": 1, "train_loss": None, "val_loss": 0.8}]
    fig = plot_training_curves({"SegNet": records}, metrics=("loss", "precision"))
    loss_ax, precision_ax = fig.axes
    train = next(line for line in loss_ax.lines if line.get_label() == "SegNet train")
    assert math.isnan(train.get_ydata()[1])
    assert len(precision_ax.lines) == 0 and precision_ax.get_legend() is None

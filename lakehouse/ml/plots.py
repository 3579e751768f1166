"""PNG plots of one training run, from the holdout fold of each model (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from lakecontract.constants import DIRECTION, RETURN
from lakehouse.ml import metrics
from lakehouse.ml.evaluate import ModelResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def render(results: list[ModelResult]) -> dict[str, bytes]:
    """{file name: PNG bytes}: reliability.png, equity.png, predicted_vs_actual.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, bytes] = {}
    direction = [r for r in results if r.family.task == DIRECTION]
    if direction:
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.plot([0, 1], [0, 1], "k:", label="perfectly calibrated")
        for r in direction:
            p, y = r.holdout_rows["pred"].to_numpy(), r.holdout_rows["label_up"].astype(int).to_numpy()
            bins = np.clip((p * 10).astype(int), 0, 9)
            xs = [p[bins == b].mean() for b in range(10) if (bins == b).sum() >= 10]
            ys = [y[bins == b].mean() for b in range(10) if (bins == b).sum() >= 10]
            ax.plot(xs, ys, "o-", label=r.family.algorithm)
        ax.set(xlabel="predicted P(up)", ylabel="observed frequency of up", title="Reliability (holdout fold)")
        ax.legend(fontsize=8)
        plots["reliability.png"] = _png(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    first = results[0].holdout_rows
    hold = metrics.portfolio_returns(first, np.ones(len(first)))
    ax.plot(hold.index, (1 + hold["buy_and_hold"]).cumprod(), "k-", lw=2, label="buy and hold")
    for r in results:
        long = r.holdout_rows["pred"].to_numpy() > (0.5 if r.family.task == DIRECTION else 0.0)
        curve = (1 + metrics.portfolio_returns(r.holdout_rows, long)["strategy"]).cumprod()
        ax.plot(curve.index, curve.to_numpy(), lw=1, label=r.family.name)
    ax.set(ylabel="equity (long/flat, 5 bp per change)", title="Equity curves (holdout fold)")
    ax.legend(fontsize=7)
    plots["equity.png"] = _png(fig)

    regress = [r for r in results if r.family.task == RETURN]
    if regress:
        fig, axes = plt.subplots(1, len(regress), figsize=(4 * len(regress), 4), squeeze=False)
        for ax, r in zip(axes[0], regress, strict=True):
            ax.scatter(r.holdout_rows["pred"], r.holdout_rows["label_ret_1"], s=3, alpha=0.4)
            ax.axhline(0, color="k", lw=0.5)
            ax.axvline(0, color="k", lw=0.5)
            ax.set(title=r.family.algorithm, xlabel="predicted return", ylabel="actual return")
        fig.suptitle("Predicted vs actual next-bar return (holdout fold)")
        plots["predicted_vs_actual.png"] = _png(fig)
    return plots

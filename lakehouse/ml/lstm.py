"""The LSTM next-bar return model (PyTorch Lightning).

Inputs are windows of `window` consecutive bars of one symbol, each bar described by
LSTM_FEATURES (returns and normalised features, never price levels); the target of the window
ending at bar t is that symbol's label_ret_1[t] = close[t+1] / close[t] - 1, exactly one bar
ahead. The scaler (per-feature mean and std) and the target scale are fitted on the fit part of
the training fold and stored as buffers in the module, so the saved weights and the ONNX graph
take raw features and return a raw return: serving cannot apply a different scaling.

Early stopping watches a validation block carved from the newest part of the training fold
(after a gap); the fold's test block is never seen during training. CPU by default; Lightning's
`accelerator="auto"` uses a GPU when one is present.

`LSTMFamily` is how evaluation, training and export see it (lakehouse/ml/family.py).
"""

from __future__ import annotations

import copy
import io
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from lakecontract.constants import RETURN
from lakehouse.ml.dataset import LSTM_FEATURES
from lakehouse.ml.family import ModelFamily

if TYPE_CHECKING:  # imported when a model is built or fitted: torch and Lightning take seconds to import
    import lightning as L
    import torch


@dataclass(frozen=True)
class LSTMSettings:
    window: int = 20
    hidden: int = 32
    epochs: int = 10
    patience: int = 2
    batch_size: int = 256
    learning_rate: float = 2e-3
    val_fraction: float = 0.15
    accelerator: str = "auto"
    features: tuple[str, ...] = LSTM_FEATURES


@dataclass
class Windows:
    x: np.ndarray  # (n, window, features) float32
    y: np.ndarray  # (n,) label_ret_1 at the window's last bar (NaN on a symbol's last bar)
    end: np.ndarray  # row position in the frame of each window's last bar


def make_windows(frame: pd.DataFrame, features: tuple[str, ...], window: int) -> Windows:
    """Every window of `window` consecutive rows of one symbol in `frame` (rows in any order)."""
    xs, ys, ends = [], [], []
    values = frame[list(features)].to_numpy(np.float32)
    labels = frame["label_ret_1"].to_numpy(np.float64)
    for _, rows in frame.groupby("symbol", sort=True).indices.items():
        rows = rows[np.argsort(frame["ts"].to_numpy()[rows], kind="stable")]
        if len(rows) < window:
            continue
        idx = rows[np.arange(window)[None, :] + np.arange(len(rows) - window + 1)[:, None]]
        xs.append(values[idx])
        ys.append(labels[idx[:, -1]])
        ends.append(idx[:, -1])
    if not xs:
        empty = np.empty((0, window, len(features)), np.float32)
        return Windows(empty, np.empty(0), np.empty(0, dtype=int))
    return Windows(np.concatenate(xs), np.concatenate(ys), np.concatenate(ends))


def _quiet_lightning() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def build_module(
    n_features: int, settings: LSTMSettings, mean: np.ndarray, std: np.ndarray, target_scale: float
) -> L.LightningModule:
    """The network with its input scaler (`mean`, `std`) and target scale as buffers, so that the saved
    weights and the ONNX graph take raw features and return a raw return."""
    import lightning as L
    import torch
    from torch import nn

    class LSTMReturn(L.LightningModule):
        mean: torch.Tensor  # buffers, registered in __init__
        std: torch.Tensor
        target_scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
            self.register_buffer("target_scale", torch.tensor(float(target_scale), dtype=torch.float32))
            self.lstm = nn.LSTM(n_features, settings.hidden, batch_first=True)
            self.head = nn.Linear(settings.hidden, 1)

        def scaled(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm((x - self.mean) / self.std)
            return self.head(out[:, -1, :]).squeeze(-1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # raw features → next-bar return
            return self.scaled(x) * self.target_scale

        def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            x, y = batch
            return nn.functional.mse_loss(self.scaled(x), y / self.target_scale)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            return self._loss(batch)

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
            self.log("val_loss", self._loss(batch), prog_bar=False, on_epoch=True)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=settings.learning_rate)

    return LSTMReturn()


@dataclass
class FittedLSTM:
    module: Any
    settings: LSTMSettings
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        self.module.eval()
        with torch.no_grad():
            return self.module.cpu()(torch.as_tensor(x, dtype=torch.float32)).numpy().astype(np.float64)

    def state(self) -> bytes:
        """Native artifact: weights + buffers + settings, loadable with `load_state`."""
        import torch

        buffer = io.BytesIO()
        torch.save(
            {
                "state_dict": self.module.state_dict(),
                "settings": self.settings.__dict__,
                "n_features": len(self.settings.features),
            },
            buffer,
        )
        return buffer.getvalue()

    def onnx(self) -> tuple[bytes, dict[str, Any]]:
        import torch

        self.module.eval().cpu()
        n = len(self.settings.features)
        example = torch.zeros(1, self.settings.window, n)
        buffer = io.BytesIO()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                self.module,
                (example,),
                buffer,  # type: ignore[arg-type]  # a file object works (dynamo=False); the stub names paths only
                input_names=["x"],
                output_names=["return"],
                dynamic_axes={"x": {0: "n"}, "return": {0: "n"}},
                dynamo=False,
                opset_version=17,
            )
        io_spec = {
            "input": "x",
            "dtype": "float32",
            "shape": [None, self.settings.window, n],
            "output": "return",
            "column": None,
        }
        return buffer.getvalue(), io_spec


def load_state(data: bytes) -> FittedLSTM:
    import torch

    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    raw = dict(payload["settings"])
    raw["features"] = tuple(raw["features"])
    settings = LSTMSettings(**raw)
    n = payload["n_features"]
    module = build_module(n, settings, np.zeros(n), np.ones(n), 1.0)
    module.load_state_dict(payload["state_dict"])
    return FittedLSTM(module.eval(), settings)


def fit_lstm(windows: Windows, ts: np.ndarray, settings: LSTMSettings, seed: int, gap: int) -> FittedLSTM:
    """Fit on `windows` (all inside one training fold); `ts` is each window's last-bar time."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from lakehouse.ml.splits import validation_split

    _quiet_lightning()
    L.seed_everything(seed, workers=True, verbose=False)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    fit_idx, val_idx = validation_split(pd.Series(ts), settings.val_fraction, gap)
    x_fit, y_fit = windows.x[fit_idx], windows.y[fit_idx]
    bars = x_fit.reshape(-1, x_fit.shape[-1])
    mean, std = bars.mean(axis=0), bars.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    target_scale = float(np.std(y_fit)) or 1.0
    module = build_module(x_fit.shape[-1], settings, mean, std, target_scale)

    def loader(idx: np.ndarray, shuffle: bool) -> DataLoader:
        data = TensorDataset(torch.as_tensor(windows.x[idx]), torch.as_tensor(windows.y[idx], dtype=torch.float32))
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(data, batch_size=settings.batch_size, shuffle=shuffle, generator=generator)

    best: dict[str, Any] = {"loss": float("inf"), "state": None, "epoch": -1}

    class KeepBest(L.Callback):
        """Early stopping stops; this remembers the weights of the best validation epoch."""

        def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            loss = float(trainer.callback_metrics.get("val_loss", float("inf")))
            if not trainer.sanity_checking and loss < best["loss"]:
                best.update(loss=loss, state=copy.deepcopy(pl_module.state_dict()), epoch=trainer.current_epoch)

    started = time.monotonic()
    trainer = L.Trainer(
        max_epochs=settings.epochs,
        accelerator=settings.accelerator,
        devices=1,
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[L.pytorch.callbacks.EarlyStopping("val_loss", patience=settings.patience), KeepBest()],
    )
    trainer.fit(module, loader(fit_idx, True), loader(val_idx, False))
    if best["state"] is not None:
        module.load_state_dict(best["state"])
    info = {
        "epochs_run": trainer.current_epoch,
        "best_epoch": best["epoch"] + 1,
        "best_val_loss": best["loss"],
        "fit_windows": len(fit_idx),
        "val_windows": len(val_idx),
        "device": str(trainer.strategy.root_device),
        "seconds": time.monotonic() - started,
    }
    return FittedLSTM(module.eval(), settings, info)


@dataclass(frozen=True)
class LSTMFamily(ModelFamily):
    """The LSTM as a model family: it reads each row's preceding `settings.window` bars of its symbol,
    so it fits on the windows that end at a training row and predicts a row only when the frame
    holds a full window before it. Native artifact: weights, buffers and settings (`load_state`)."""

    settings: LSTMSettings = field(default_factory=LSTMSettings)
    task: str = RETURN
    algorithm: str = "lstm"
    kind: ClassVar[str] = "lstm"
    native_file: ClassVar[str] = "model.pt"

    @property
    def features(self) -> tuple[str, ...]:
        return self.settings.features

    @classmethod
    def for_artifact(cls, io_spec: dict[str, Any]) -> LSTMFamily:
        settings = LSTMSettings(window=io_spec["window"], features=tuple(io_spec["features"]))
        return cls(settings, io_spec["task"], io_spec["algorithm"])

    def fit(self, train: pd.DataFrame, seed: int, gap: int) -> FittedLSTM:
        """Every window in `train` ends at a training row and holds only training rows (a fold's
        training rows are all rows up to its end), so the windows are built from `train` alone."""
        windows = make_windows(train, self.settings.features, self.settings.window)
        return fit_lstm(windows, train["ts"].to_numpy()[windows.end], self.settings, seed, gap)

    def predict(self, model: FittedLSTM, x: np.ndarray) -> np.ndarray:
        return model.predict(x)

    def predict_rows(self, model: FittedLSTM, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        windows = make_windows(frame, model.settings.features, model.settings.window)
        position = pd.Series(np.arange(len(windows.end)), index=windows.end)
        have = np.isin(rows, windows.end)
        out = np.full(len(rows), np.nan)
        out[have] = model.predict(windows.x[position.loc[rows[have]].to_numpy()])
        return out

    def to_onnx(self, model: FittedLSTM) -> tuple[bytes, dict[str, Any]]:
        onnx_bytes, io_spec = model.onnx()
        io_spec.update(features=list(model.settings.features), window=model.settings.window)
        return onnx_bytes, io_spec

    def params(self, model: FittedLSTM) -> dict[str, str]:
        return {k: repr(v) for k, v in asdict(model.settings).items()}

    def dump(self, model: FittedLSTM) -> bytes:
        return model.state()

    def load(self, data: bytes) -> FittedLSTM:
        return load_state(data)

    def fit_info(self, model: FittedLSTM) -> dict[str, Any]:
        return dict(model.info)

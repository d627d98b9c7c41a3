"""``FeatureMapCallback``: log feature maps of a fixed probe batch during Lightning training.

For the ``lightning`` package (``lightning.pytorch``); falls back to ``pytorch_lightning``
when only that is installed. Needs torch, like the rest of the writer side.
"""

import inspect
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Union

import torch

try:
    from lightning.fabric.utilities.apply_func import move_data_to_device
    from lightning.pytorch import Callback
    from lightning.pytorch.loggers import TensorBoardLogger
except ImportError:  # only the older package name is installed
    try:
        from lightning_fabric.utilities.apply_func import move_data_to_device
        from pytorch_lightning import Callback
        from pytorch_lightning.loggers import TensorBoardLogger
    except ImportError:
        raise ImportError(
            "tb_featmap.lightning needs PyTorch Lightning: pip install lightning"
        ) from None

from tb_featmap.recorder import FeatureMapRecorder
from tb_featmap.summary import log_feature_maps

__all__ = ["FeatureMapCallback"]

# Arguments of log_feature_maps that the callback supplies itself.
_OWN_ARGUMENTS = ("writer", "outputs", "step")


class FeatureMapCallback(Callback):
    """Every ``every_n_steps`` optimizer steps, log the feature maps of a probe batch.

    When training starts and at the end of each training batch, if ``trainer.global_step``
    is a multiple of ``every_n_steps`` (so at step 0, the initial weights, too), the callback runs ``probe_batch`` through the LightningModule in eval
    mode under ``torch.no_grad()``, records ``layers`` with ``FeatureMapRecorder``, puts
    every submodule back in the train/eval mode it had, and writes the outputs with
    ``log_feature_maps`` to the trainer's ``TensorBoardLogger`` at step ``global_step``.
    Only global rank 0 runs the probe and writes. A step is logged once, also with gradient
    accumulation. The probe batch is never modified; a copy is moved to the module's device.

    Args:
        layers: Module names or glob patterns, as ``pl_module.named_modules()`` gives them
            (``"backbone.layer1.0.conv1"``, ``"encoder.*"``). Checked when training starts.
        probe_batch: The inputs to log: a tensor (``pl_module(probe_batch)``), a tuple or
            list (``pl_module(*probe_batch)``) or a mapping (``pl_module(**probe_batch)``).
            Use the same batch throughout, so that steps compare.
        every_n_steps: Log when ``global_step % every_n_steps == 0``. Default 100.
        **log_kwargs: Passed to ``log_feature_maps`` (``max_samples``, ``max_channels``,
            ``max_size``, ``precision``, ``prefix``, ``layout``, ...). ``max_samples``
            defaults to the probe batch's size here, so every probe sample is kept.

    Raises:
        TypeError: If an argument has the wrong type, or ``log_kwargs`` holds an argument
            ``log_feature_maps`` does not take.
        ValueError: If ``every_n_steps`` < 1, ``layers`` is empty; at the start of
            training, if a layer matches no module or the trainer has no
            ``TensorBoardLogger``.

    Examples::

        >>> probe = next(iter(val_loader))[0][:4]
        >>> callback = FeatureMapCallback(["model.conv1", "model.layer*.0"], probe, every_n_steps=200)
        >>> trainer = Trainer(logger=TensorBoardLogger("runs"), callbacks=[callback])
        >>> trainer.fit(model, train_loader)
    """

    def __init__(
        self,
        layers: Union[str, Iterable[str]],
        probe_batch: Any,
        *,
        every_n_steps: int = 100,
        **log_kwargs: Any,
    ):
        super().__init__()
        if isinstance(layers, str):
            layers = [layers]
        if not isinstance(layers, Iterable):
            raise TypeError(f"layers must be a str or an iterable of str, got {type(layers).__name__}")
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("layers is empty: name at least one module")
        for name in self.layers:
            if not isinstance(name, str):
                raise TypeError(f"layers must hold str, got {type(name).__name__}: {name!r}")
        if not _holds_tensor(probe_batch):
            raise TypeError(
                "probe_batch must be a tensor, or a tuple, list or mapping of tensors, "
                f"got {type(probe_batch).__name__}"
            )
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int):
            raise TypeError(f"every_n_steps must be a positive int, got {type(every_n_steps).__name__}")
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive int, got {every_n_steps}")
        own = sorted(set(log_kwargs) & set(_OWN_ARGUMENTS))
        if own:
            raise TypeError(f"log_kwargs must not set {own}: the callback supplies them")
        try:
            inspect.signature(log_feature_maps).bind(None, {}, 0, **log_kwargs)
        except TypeError as e:
            raise TypeError(f"log_kwargs: {e}; see tb_featmap.log_feature_maps") from None
        self.probe_batch = probe_batch
        self.every_n_steps = every_n_steps
        self.log_kwargs: Dict[str, Any] = log_kwargs
        self._last_step: Optional[int] = None
        self._resolved: Optional[List[str]] = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Check the layer names and the logger before training starts."""
        if stage != "fit":
            return
        # Raises on a name that matches nothing; glob patterns are resolved (and warned about) once.
        self._resolved = FeatureMapRecorder(pl_module, self.layers).layers
        self._tensorboard_logger(trainer)

    def on_train_start(self, trainer, pl_module) -> None:
        """Log the model as training starts (step 0: the initial weights), if the step is due."""
        self._maybe_log(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        """Log the probe batch's feature maps when ``global_step`` is due."""
        self._maybe_log(trainer, pl_module)

    def _maybe_log(self, trainer, pl_module) -> None:
        step = trainer.global_step
        if step % self.every_n_steps != 0 or step == self._last_step:
            return
        self._last_step = step
        if not trainer.is_global_zero:
            return
        self.log_now(trainer, pl_module)

    def log_now(self, trainer, pl_module) -> Dict[str, tuple]:
        """Run the probe and log it at ``trainer.global_step``, whatever the schedule.

        Returns:
            What ``log_feature_maps`` returns: the stored shape of each tag written.
        """
        writer = self._tensorboard_logger(trainer).experiment
        probe = move_data_to_device(self.probe_batch, pl_module.device)
        # eval_mode: eval while probing, then each module gets its own train/eval flag back.
        layers = self.layers if self._resolved is None else self._resolved
        recorder = FeatureMapRecorder(pl_module, layers, eval_mode=True)
        with torch.no_grad(), recorder:
            if isinstance(probe, Mapping):
                pl_module(**probe)
            elif isinstance(probe, (tuple, list)):
                pl_module(*probe)
            else:
                pl_module(probe)
        kwargs = {"max_samples": _batch_size(probe), **self.log_kwargs}
        return log_feature_maps(writer, recorder.outputs, trainer.global_step, **kwargs)

    @staticmethod
    def _tensorboard_logger(trainer) -> TensorBoardLogger:
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger
        found = [type(logger).__name__ for logger in trainer.loggers]
        raise ValueError(
            "FeatureMapCallback needs a TensorBoardLogger on the Trainer, found "
            f"{found or 'no logger'}; pass logger=TensorBoardLogger(save_dir) (it can be one "
            "of several loggers)"
        )


def _holds_tensor(batch) -> bool:
    if isinstance(batch, torch.Tensor):
        return True
    if isinstance(batch, Mapping):
        return bool(batch) and all(isinstance(k, str) for k in batch)
    if isinstance(batch, (tuple, list)):
        return bool(batch) and any(isinstance(v, torch.Tensor) for v in batch)
    return False


def _batch_size(batch) -> Optional[int]:
    """The leading size of the first tensor of the batch, or None (keep all samples)."""
    values = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(batch, torch.Tensor):
        values = [batch]
    for value in values:
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return max(1, int(value.shape[0]))
    return None

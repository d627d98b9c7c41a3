"""``FeatureMapRecorder``: capture named layer outputs of any ``nn.Module`` with forward hooks."""

import difflib
import fnmatch
from typing import Dict, Iterable, List, Union

import torch
from torch import nn

__all__ = ["FeatureMapRecorder"]


class FeatureMapRecorder:
    """Record the outputs of named submodules while a model runs.

    A context manager: on entry it puts a forward hook on each selected module, on exit it
    removes every hook, also when an exception is raised. Each hook stores a detached copy
    of the output, so an in-place op that follows (AlexNet's ``ReLU(inplace=True)``) cannot
    overwrite what was recorded. A later forward pass replaces the earlier outputs.

    Args:
        model: Any ``nn.Module``.
        layers: Qualified names as ``model.named_modules()`` gives them (``"features.0"``,
            ``"layer1.0.conv2"``), or glob patterns (``"features.*"``, ``"layer*.0.conv1"``).
            A single string is one name or pattern.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or ``layers`` is not str(s).
        ValueError: If a name or pattern matches no module; the error lists the closest
            valid names.

    Attributes:
        outputs: A dict from layer name to its last output tensor, in model order.
        layers: The names of the hooked modules, in model order.

    Examples::

        >>> model = torchvision.models.alexnet(weights=None)
        >>> with FeatureMapRecorder(model, ["features.0", "features.3"]) as rec:
        ...     model(torch.rand(1, 3, 224, 224))
        >>> {name: tuple(t.shape) for name, t in rec.outputs.items()}
        {'features.0': (1, 64, 55, 55), 'features.3': (1, 192, 27, 27)}
    """

    def __init__(self, model: nn.Module, layers: Union[str, Iterable[str]]):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(layers, str):
            layers = [layers]
        try:
            patterns = list(layers)
        except TypeError:
            raise TypeError(f"layers must be a str or an iterable of str, got {type(layers).__name__}") from None
        if not patterns:
            raise ValueError("layers is empty: name at least one module")
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise TypeError(f"layers must hold str, got {type(pattern).__name__}: {pattern!r}")
        modules = {name: module for name, module in model.named_modules() if name}
        selected = set()
        for pattern in patterns:
            matched = fnmatch.filter(modules, pattern)
            if not matched:
                close = difflib.get_close_matches(pattern, list(modules), n=5, cutoff=0.4)
                hint = f" Closest: {close}." if close else ""
                raise ValueError(
                    f"layers: {pattern!r} matches no module of {type(model).__name__}.{hint} "
                    "Hint: names are those of model.named_modules()."
                )
            selected.update(matched)
        self._model = model
        self._modules = {name: m for name, m in modules.items() if name in selected}
        self.layers: List[str] = list(self._modules)
        self.outputs: Dict[str, torch.Tensor] = {}
        self._handles = []

    def __enter__(self) -> "FeatureMapRecorder":
        if self._handles:
            raise RuntimeError("FeatureMapRecorder is already active")
        self.outputs = {}
        try:
            for name, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this recorder added. Safe to call more than once."""
        while self._handles:
            self._handles.pop().remove()

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
                output = output[0]  # e.g. nn.MultiheadAttention returns (output, weights)
            if isinstance(output, torch.Tensor):
                # Insert in model order even when modules run in another order.
                self.outputs[name] = output.detach().clone()
                self.outputs = {n: self.outputs[n] for n in self.layers if n in self.outputs}

        return hook

"""``FeatureMapRecorder``: capture named layer outputs of any ``nn.Module`` with forward hooks."""

import difflib
import fnmatch
import functools
import re
import sys
import warnings
import weakref
from typing import Dict, Iterable, List, Optional, Union

import torch
from torch import nn

__all__ = ["FeatureMapRecorder", "LayerOutputs"]


class LayerOutputs(dict):
    """A dict from layer name to output tensor, in model order, that also knows each
    output's layout (``layouts``: name to ``"NCL"``, ``"NF"``, ``"NTD"``, ...; a name
    missing there has no layout known from its module). ``log_feature_maps`` reads
    ``layouts`` for the names its own ``layout=`` argument does not cover.
    """

    def __init__(self, *args, layouts: Optional[Dict[str, str]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.layouts: Dict[str, str] = dict(layouts or {})


# Module types whose output's layout is known from the type alone, by the output's rank.
_CHANNELS_1D = (
    nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d, nn.InstanceNorm1d, nn.MaxPool1d,
    nn.AvgPool1d, nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d, nn.LPPool1d,
)
_CHANNELS_3D = (
    nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d, nn.InstanceNorm3d, nn.MaxPool3d,
    nn.AvgPool3d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d,
)
# torchvision's batch-first ViT blocks, named so that torchvision need not be imported.
_TORCHVISION_TOKENS = {
    ("torchvision.models.vision_transformer", n) for n in ("Encoder", "EncoderBlock")
}
_PRUNE_AT = 4096  # entries of the known layouts before the dead ones are dropped


def _is_token_module(module: nn.Module) -> bool:
    """True for modules whose rank-3 outputs are ``[batch, tokens, dim]``."""
    kind = type(module)
    if (kind.__module__, kind.__name__) in _TORCHVISION_TOKENS:
        return True
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return bool(module.self_attn.batch_first)
    if isinstance(module, nn.TransformerEncoder):
        return bool(module.layers) and _is_token_module(module.layers[0])
    if isinstance(module, nn.TransformerDecoder):
        return bool(module.layers) and _is_token_module(module.layers[0])
    if isinstance(module, nn.Transformer):
        return bool(module.batch_first)
    if isinstance(module, nn.MultiheadAttention):
        return bool(module.batch_first)
    return False


def _is_sequence_module(module: nn.Module) -> bool:
    """True for modules whose rank-3 outputs are sequences but not ``[batch, tokens, dim]``
    for sure: sequence-first transformer layers and attention (``[tokens, batch, dim]``), and
    recurrent layers (time steps, which a patch grid would misdraw)."""
    if isinstance(module, nn.RNNBase):
        return True
    token_kin = (
        nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.TransformerEncoder,
        nn.TransformerDecoder, nn.Transformer, nn.MultiheadAttention,
    )
    return isinstance(module, token_kin) and not _is_token_module(module)


def _rule(
    module: nn.Module, *, in_tokens: bool = False, in_sequence: bool = False
) -> Optional[Dict[int, str]]:
    """The layout of each rank of output that ``module``'s type decides; empty for no rule,
    None for an output whose layout is unknown whatever it was given (nothing passes through).

    ``in_tokens``: ``module`` sits inside a batch-first token module (a ViT encoder), so its
    rank-3 outputs (LayerNorm, MLP, dropout) are tokens too. ``in_sequence``: it sits inside
    a sequence module (see ``_is_sequence_module``), so its outputs are unknown.
    """
    if in_sequence or _is_sequence_module(module):
        return None
    if isinstance(module, _CHANNELS_1D):
        return {3: "NCL"}
    if isinstance(module, _CHANNELS_3D):
        return {5: "NCDHW"}
    if isinstance(module, nn.Linear):
        return {2: "NF", 3: "NTD"}
    if in_tokens or _is_token_module(module):
        return {3: "NTD"}
    return {}


def _first_tensor(value) -> Optional[torch.Tensor]:
    """``value`` if a tensor, else the first item of a tuple or list when that is a tensor
    (``nn.MultiheadAttention`` returns ``(output, weights)``, a hook's inputs are a tuple)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def _caller_of(model: nn.Module) -> int:
    """The ``stacklevel``, for a warning raised in a hook, of the line that called ``model``
    (the user's ``model(x)``), rather than a line inside torch or the model's code."""
    frame, level, found = sys._getframe(1), 1, None
    while frame is not None:
        calls = frame.f_code.co_name in ("_wrapped_call_impl", "_call_impl")
        if calls and frame.f_locals.get("self") is model:
            found = level + 1  # the outermost call of the model: the user's frame is above
        frame, level = frame.f_back, level + 1
    return found or 2


def _same_axes(layout: str, given: torch.Tensor, output: torch.Tensor) -> bool:
    """Whether ``output`` keeps the axes of ``given`` (a module's argument, of ``layout``;
    ``""`` for none) that its layout names: the batch and channel axes (``NTD``: batch and
    dim), so that a transpose or a recurrent block, which keeps the rank, keeps no layout."""
    if given.ndim != output.ndim:
        return False
    if layout == "":
        return True
    if layout == "NTD":
        return given.shape[0] == output.shape[0] and given.shape[-1] == output.shape[-1]
    return given.shape[:2] == output.shape[:2]


class FeatureMapRecorder:
    """Record the outputs of named submodules while a model runs.

    A context manager: on entry it puts a forward hook on every module (those selected
    record; the others only pass layouts on, see below), on exit it removes every hook,
    also when an exception is raised. Each recording hook stores a detached copy
    of the output, so an in-place op that follows (AlexNet's ``ReLU(inplace=True)``) cannot
    overwrite what was recorded. A later forward pass replaces the earlier outputs.

    Names and patterns: a string that is a module's name selects that module. Otherwise it
    is a glob over the dotted names: ``*`` matches any characters within one part of a
    name (no dot), ``**`` any characters including dots, ``?`` one character that is not a
    dot, and ``[seq]`` / ``[!seq]`` as in ``fnmatch``. In a ResNet, ``"layer1.*"`` selects
    the two blocks ``layer1.0`` and ``layer1.1``; ``"layer1.**"`` every module below
    ``layer1``. Before this rule ``*`` crossed dots: a pattern whose matches differ from
    that older rule warns (``FutureWarning``) and names the ``**`` spelling of its old
    meaning.

    A module that runs more than once in one forward pass (torchvision's ``BasicBlock``
    calls its one ``relu`` twice) keeps only its last output; the recorder warns once per
    such module.

    Args:
        model: Any ``nn.Module``.
        layers: Module names as ``model.named_modules()`` gives them (``"features.0"``,
            ``"layer1.0.conv2"``), or glob patterns (``"features.*"``, ``"layer*.0.conv1"``,
            ``"**.conv1"``). A single string is one name or pattern.
        eval_mode: Put the whole model in eval mode while recording and, on exit, give
            every module back its own ``training`` flag. Use it for a probe batch in the
            middle of training: in train mode a probe would update BatchNorm's running
            statistics and apply dropout. Default False: the modes are left alone.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``, ``layers`` is not str(s) or
            ``eval_mode`` is not a bool.
        ValueError: If a name or pattern matches no module; the error lists the closest
            valid names.

    Layouts: each output's layout is inferred from the module that produced it and kept in
    ``outputs.layouts``, so that ``log_feature_maps(writer, rec.outputs, step)`` needs no
    ``layout=``: ``Conv1d``/``ConvTranspose1d`` (and 1-D norms and pools) on a rank-3
    output give ``NCL``; their 3-D kin ``NCDHW``; ``Linear`` gives ``NF`` on a rank-2 output
    and ``NTD`` (tokens) on a rank-3 one; batch-first transformer layers
    (``nn.TransformerEncoderLayer``/``DecoderLayer``/``Encoder``/``Decoder``, ``nn.Transformer``,
    ``nn.MultiheadAttention`` with ``batch_first=True``, torchvision's ViT ``Encoder`` and
    ``EncoderBlock``) and every module inside one give ``NTD`` on rank-3 outputs.

    A module with no such rule (``ReLU``, ``GELU``, ``Dropout``, ``Identity``, a custom
    block, a container) takes the layout of what it returns when that is already known (an
    in-place ``ReLU(inplace=True)`` returns its input; an ``nn.Sequential`` ending in a
    ``Conv1d`` returns the conv's output), else that of its first argument when the output
    keeps its batch and channel axes (``NTD``: batch and dim): ``Conv1d -> BatchNorm1d ->
    ReLU -> Dropout`` is ``NCL`` all along, while a ``Flatten`` after it (rank 2) is not, nor
    a transpose to ``[N, L, C]``. Sequence-first transformer layers and attention, recurrent
    layers (``RNN``, ``LSTM``, ``GRU``), the modules inside them and what they pass on have
    no layout. To pass layouts along, the recorder
    watches every module during a forward pass, selected or not, and remembers the layout
    of each tensor a module returned until the pass ends (by a weak reference: a freed
    tensor is never confused with a new one at its address). Any output still unknown has
    no entry and ``log_feature_maps`` applies its rank rules; its ``layout=`` argument wins
    over ``outputs.layouts``.

    Attributes:
        outputs: A ``LayerOutputs`` dict from layer name to its last output tensor, in model
            order, with ``outputs.layouts``.
        layers: The names of the hooked modules, in model order.

    Examples::

        >>> model = torchvision.models.alexnet(weights=None)
        >>> with torch.no_grad(), FeatureMapRecorder(model, ["features.0", "features.3"]) as rec:
        ...     model(torch.rand(1, 3, 224, 224))
        >>> {name: tuple(t.shape) for name, t in rec.outputs.items()}
        {'features.0': (1, 64, 55, 55), 'features.3': (1, 192, 27, 27)}
        >>> FeatureMapRecorder(torchvision.models.resnet18(weights=None), "layer1.*").layers
        ['layer1.0', 'layer1.1']
    """

    def __init__(
        self, model: nn.Module, layers: Union[str, Iterable[str]], *, eval_mode: bool = False
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(eval_mode, bool):
            raise TypeError(f"eval_mode must be a bool, got {type(eval_mode).__name__}")
        if isinstance(layers, str):
            layers = [layers]
        try:
            patterns = list(layers)
        except TypeError:
            raise TypeError(
                f"layers must be a str or an iterable of str, got {type(layers).__name__}"
            ) from None
        if not patterns:
            raise ValueError("layers is empty: name at least one module")
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise TypeError(f"layers must hold str, got {type(pattern).__name__}: {pattern!r}")
        modules = {name: module for name, module in model.named_modules() if name}
        selected = set()
        for pattern in patterns:
            matched = _select(modules, pattern)
            if not matched:
                close = difflib.get_close_matches(pattern, list(modules), n=5, cutoff=0.4)
                hint = f" Closest: {close}." if close else ""
                if "*" in pattern and fnmatch.filter(modules, pattern):
                    hint += (
                        " '*' stays within one part of a dotted name;"
                        f" {_old_meaning(pattern)!r} crosses dots."
                    )
                raise ValueError(
                    f"layers: {pattern!r} matches no module of {type(model).__name__}.{hint} "
                    "Hint: names are those of model.named_modules()."
                )
            _warn_if_meaning_changed(pattern, matched, modules)
            selected.update(matched)
        self._model = model
        self._eval_mode = eval_mode
        self._modules = {name: m for name, m in modules.items() if name in selected}
        self.layers: List[str] = list(self._modules)
        tokens = [name + "." for name, m in modules.items() if _is_token_module(m)]
        sequences = [name + "." for name, m in modules.items() if _is_sequence_module(m)]
        # Every module is watched, selected or not, so that a layout can be passed along a
        # chain (Conv1d -> BatchNorm1d -> ReLU -> Dropout) whose links the user did not pick.
        # Scripted modules take no hooks; they and what they return stay unknown.
        self._watched = {
            name: (m, _rule(m, in_tokens=name.startswith(tuple(tokens)),
                            in_sequence=name.startswith(tuple(sequences))))
            for name, m in modules.items()
            if not isinstance(m, torch.jit.ScriptModule) or name in self._modules
        }
        self.outputs: LayerOutputs = LayerOutputs()
        self._handles = []
        self._modes: Dict[nn.Module, bool] = {}
        self._calls: Optional[Dict[str, int]] = None  # per forward pass of the model
        self._warned_reuse = set()
        # The layouts of the tensors that modules returned in this forward pass: id(tensor)
        # -> (weak reference to the tensor, layout). The reference is checked, so that the
        # id of a freed tensor, which Python may give to a new one, never answers; being weak,
        # it keeps no activation alive. Emptied when a pass of the model starts and ends.
        self._known: Dict[int, tuple] = {}
        self._prune_at = _PRUNE_AT

    def __enter__(self) -> "FeatureMapRecorder":
        if self._handles:
            raise RuntimeError("FeatureMapRecorder is already active")
        self.outputs = LayerOutputs()
        self._calls = None
        self._known = {}
        try:
            self._handles.append(self._model.register_forward_pre_hook(self._start_pass))
            self._handles.append(self._model.register_forward_hook(self._end_pass))
            for name, (module, rule) in self._watched.items():
                hook = self._hook(name, rule, record=name in self._modules)
                self._handles.append(module.register_forward_hook(hook))
            if self._eval_mode:
                self._modes = {module: module.training for module in self._model.modules()}
                self._model.eval()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this recorder added and, with ``eval_mode``, give each module
        back its ``training`` flag. Safe to call more than once."""
        while self._handles:
            self._handles.pop().remove()
        self._known = {}
        # Set the flags one by one: model.train(flag) would give every module the same one.
        for module, training in self._modes.items():
            module.training = training
        self._modes = {}

    def _start_pass(self, module, inputs) -> None:
        self._calls = {}
        self._known = {}

    def _end_pass(self, module, inputs, output) -> None:
        self._calls = None
        self._known = {}

    def _known_layout(self, tensor: torch.Tensor) -> Optional[str]:
        """The layout remembered for ``tensor`` in this pass: a layout, ``""`` when it is
        known to have none (a sequence module's output), None when it was not seen."""
        entry = self._known.get(id(tensor))
        return entry[1] if entry is not None and entry[0]() is tensor else None

    def _remember(self, tensor: torch.Tensor, layout: str) -> None:
        known = self._known
        if len(known) >= self._prune_at:  # submodules called outside a pass of the model
            known = {k: v for k, v in known.items() if v[0]() is not None}
            self._known = known
            self._prune_at = max(_PRUNE_AT, 2 * len(known))
        known[id(tensor)] = (weakref.ref(tensor), layout)

    def _layout(
        self, rule: Optional[Dict[int, str]], inputs, output: torch.Tensor
    ) -> Optional[str]:
        """The layout of ``output``: by the module's own rule (none at all for a sequence
        module); else the layout it already has (an in-place op returns its input; a
        container, its last child's output); else that of the first input when the output
        keeps its batch and channel axes (ReLU, Dropout, a custom block; not a transpose)."""
        if rule is None:
            layout = ""
        else:
            layout = rule.get(output.ndim) or self._known_layout(output)
        if layout is None:
            first = _first_tensor(inputs)
            given = None if first is None else self._known_layout(first)
            if given is not None and _same_axes(given, first, output):
                layout = given
        if layout is not None:
            self._remember(output, layout)
        return layout or None

    def _hook(self, name: str, rule: Optional[Dict[int, str]], *, record: bool):
        def watch(module, inputs, output):
            if self._known or rule != {}:  # else nothing can be known yet: return at once
                output = _first_tensor(output)
                if output is not None:
                    self._layout(rule, inputs, output)

        def hook(module, inputs, output):
            if self._calls is not None:  # inside a forward pass of the whole model
                self._calls[name] = self._calls.get(name, 0) + 1
                if self._calls[name] == 2 and name not in self._warned_reuse:
                    self._warned_reuse.add(name)
                    warnings.warn(
                        f"FeatureMapRecorder: {name!r} ran more than once in one forward pass "
                        f"of {type(self._model).__name__}; only its last output is kept. Record "
                        "the module before it or the enclosing block to see the other calls.",
                        RuntimeWarning,
                        stacklevel=_caller_of(self._model),
                    )
            output = _first_tensor(output)
            if output is not None:
                # Insert in model order even when modules run in another order.
                self.outputs[name] = output.detach().clone()
                layout = self._layout(rule, inputs, output)
                layouts = dict(self.outputs.layouts)
                if layout is None:
                    layouts.pop(name, None)
                else:
                    layouts[name] = layout
                self.outputs = LayerOutputs(
                    ((n, self.outputs[n]) for n in self.layers if n in self.outputs),
                    layouts=layouts,
                )

        return hook if record else watch


def _select(modules: Iterable[str], pattern: str) -> List[str]:
    """The module names that `pattern` selects: itself if it is a name, else its glob matches."""
    if pattern in modules:
        return [pattern]
    regex = _translate(pattern)
    return [name for name in modules if regex.fullmatch(name)]


@functools.lru_cache(maxsize=256)
def _translate(pattern: str) -> "re.Pattern":
    """A glob over dotted names as a regex: ``*`` and ``?`` stop at dots, ``**`` does not."""
    parts, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
            while i < n and pattern[i] == "*":
                i += 1
            continue
        i += 1
        if c == "*":
            parts.append("[^.]*")
        elif c == "?":
            parts.append("[^.]")
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            j = pattern.find("]", j)
            if j < 0:
                parts.append(re.escape(c))
                continue
            body = re.sub(r"([\\\[&~|^])", r"\\\1", pattern[i:j])
            if body.startswith("!"):
                body = "^" + body[1:]
            parts.append(f"[{body}]")
            i = j + 1
        else:
            parts.append(re.escape(c))
    return re.compile("".join(parts), re.DOTALL)


def _old_meaning(pattern: str) -> str:
    """The spelling, under the dotted rule, of what `pattern` meant when ``*`` crossed dots."""
    return re.sub(r"\*+", "**", pattern)


def _warn_if_meaning_changed(pattern: str, matched: List[str], modules: Dict[str, nn.Module]) -> None:
    if pattern in modules or "*" not in pattern and "?" not in pattern:
        return
    before = fnmatch.filter(modules, pattern)
    if set(before) == set(matched):
        return
    warnings.warn(
        f"layers: {pattern!r} selects {len(matched)} modules, {len(before)} before '*' stopped "
        f"at dots (tb_featmap 0.1.0): '*' now stays within one part of a dotted name. Write "
        f"{_old_meaning(pattern)!r} to select every depth as before.",
        FutureWarning,
        stacklevel=3,
    )

"""What recording costs a forward pass: FeatureMapRecorder against plain hooks and no hooks.

Since issue 11 the recorder watches every module of the model during a pass, selected or
not, so that a layout passes along a chain (``Conv1d -> BatchNorm1d -> ReLU``) whose links the
user did not pick. This measures what that costs, on the same model and input in the same
run, three ways:

- **plain**: ``model(x)`` under ``torch.no_grad()``, no hook at all (the baseline);
- **hooks**: a forward hook on each selected layer only, keeping ``output.detach().clone()``
  (what a hand-written recorder, or tb_featmap 0.1.0's, does);
- **recorder**: ``FeatureMapRecorder(model, layers)`` around the same forward (ours).

torchvision's ResNet-18 (``weights=None``, eval, 224 x 224; 4 of its layers recorded) at batch
1 and 8, and a 1-D conv net (6 blocks of Conv1d, BatchNorm1d, ReLU; its ReLUs recorded) on
16,000 samples. torch's default thread count; the three ways take turns within each repeat
so that drift hits all alike; median and worst per way, idle and with one spinning process
per core (``common.busy_cores``).

Usage::

    python benchmarks/bench_recorder.py [--quick] [--repeats N]
"""

import argparse
import contextlib
import time
from typing import Callable, Dict, List, Tuple

import common

__all__ = ["cases", "main"]


def cases() -> Dict[str, Tuple["object", List[str], "object"]]:
    """Name -> (model, recorded layer names, input)."""
    import torch
    import torchvision
    from torch import nn

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    layers = ["conv1", "layer1.0", "layer3.1", "layer4.1"]
    blocks = []
    for i in range(6):
        blocks += [nn.Conv1d(1 if i == 0 else 32, 32, 9, padding=4), nn.BatchNorm1d(32), nn.ReLU()]
    audio = nn.Sequential(*blocks).eval()
    relus = [str(3 * i + 2) for i in range(6)]
    return {
        "resnet18 b1": (resnet, layers, torch.randn(1, 3, 224, 224)),
        "resnet18 b8": (resnet, layers, torch.randn(8, 3, 224, 224)),
        "conv1d x6 (ReLUs)": (audio, relus, torch.randn(1, 1, 16000)),
    }


def ways(model, layers: List[str], x) -> Dict[str, Callable[[], None]]:
    """The three ways to run one forward pass, each a call that does it once."""
    import torch

    from tb_featmap import FeatureMapRecorder

    modules = dict(model.named_modules())

    def plain():
        with torch.no_grad():
            model(x)

    def hooks():
        kept = {}
        handles = [
            modules[name].register_forward_hook(
                lambda m, i, o, name=name: kept.__setitem__(name, o.detach().clone()))
            for name in layers
        ]
        try:
            with torch.no_grad():
                model(x)
        finally:
            for handle in handles:
                handle.remove()

    def recorder():
        with torch.no_grad(), FeatureMapRecorder(model, layers) as rec:
            model(x)
        assert list(rec.outputs) == layers

    return {"plain": plain, "hooks": hooks, "recorder": recorder}


def measure(calls: Dict[str, Callable[[], None]], repeats: int) -> Dict[str, List[float]]:
    for call in calls.values():  # warm up: first-call allocations, lazy imports
        call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few repeats, a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="passes per way (default 30)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 30)
    print(f"bench_recorder: {common.machine()}; {repeats} passes per way")
    print(f"{'load':5} {'case':18} {'plain':>16} {'hooks':>16} {'recorder':>16}"
          "  recorder/plain  recorder/hooks  (median, worst in brackets)")
    all_cases = cases()
    for load in ("idle", "busy"):
        with common.busy_cores() if load == "busy" else contextlib.nullcontext():
            for name, (model, layers, x) in all_cases.items():
                times = measure(ways(model, layers, x), repeats)
                med = {way: common.median(t) for way, t in times.items()}
                cells = [f"{common.ms(med[w]):>8} ({common.ms(common.worst(times[w]))})"
                         for w in ("plain", "hooks", "recorder")]
                print(f"{load:5} {name:18} " + " ".join(f"{c:>16}" for c in cells)
                      + f"  {med['recorder'] / med['plain']:14.3f}"
                      + f"  {med['recorder'] / med['hooks']:14.3f}")


if __name__ == "__main__":
    main()

"""``tb-featmap``: list and export logged feature maps from the command line, no server needed.

::

    tb-featmap ls LOGDIR [--json]
    tb-featmap export LOGDIR [--run R] [--layer L] [--step S | --steps all|A:B] -o OUT.png|OUT.gif
                      [--colormap gray] [--norm channel|layer|fixed] [--sample 0] [--scale K] [--duration MS]
                      [--depth D]
    tb-featmap export LOGDIR [--run R] [--layer L] --timeline [--stat std] -o STRIP.png

Reads through ``tb_featmap.reader`` and draws with ``tb_featmap.render``, the same colours and
normalisations as the Feature Maps tab. Imports no torch. Errors are one line on stderr and
exit code 2. Run and layer names are shown escaped (``_series.show_name``): a bidi control or
an invisible character in a name appears as ``\u202e`` and the like, never as itself.
"""

import argparse
import json
import os
import sys
from typing import List, Optional, Sequence

import numpy as np

from tb_featmap import __version__, _fs, _series, render
from tb_featmap.reader import FeatureMapReader, LayerInfo

__all__ = ["main"]

_PROG = "tb-featmap"
_MIN_CELL = 16  # the default --scale makes each map at least this many pixels wide or high
# --timeline's default --scale: each value this many pixels, unless the strip would then be
# wider or higher than _STRIP_SIDE (then fewer, at least 1).
_STRIP_CELL, _STRIP_SIDE = 8, 2048
_name = _series.show_name  # how a run or layer name appears in any message


class _UsageError(Exception):
    """A problem with the user's input: reported as one line, exit code 2."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``tb-featmap`` command.

    Args:
        argv: The arguments without the program name. Default: ``sys.argv[1:]``.

    Returns:
        The exit code: 0 on success, 1 when ``ls`` finds no feature maps, 2 on bad input
        (unknown path, run, layer or step, invalid option), with one line on stderr.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (code 2)
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args)
    except _UsageError as e:
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="List and export feature maps logged by tb_featmap."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = commands.add_parser("ls", help="list runs, layers, shapes and steps")
    ls.add_argument("logdir", help="log directory, as given to tensorboard --logdir")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=_ls)

    export = commands.add_parser(
        "export", help="draw one step as a PNG channel grid, or the steps as a GIF"
    )
    export.add_argument("logdir", help="log directory, as given to tensorboard --logdir")
    export.add_argument("--run", help="run name (default: the only run with feature maps)")
    export.add_argument("--layer", help="layer name (default: the only layer of the run)")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="the step to draw (default: the newest kept)")
    which.add_argument(
        "--steps", help="'all' kept steps, or 'A:B' those from A to B inclusive, as a GIF"
    )
    export.add_argument("-o", "--output", required=True, help="output file, .png or .gif")
    export.add_argument("--colormap", choices=render.COLORMAPS, default="gray")
    export.add_argument("--norm", choices=render.NORMALIZATIONS, default=None,
                        help="channel: each map its own range; layer: one range per step; "
                             "fixed: one range over all steps (default: channel, layer for "
                             "linear layers)")
    export.add_argument("--sample", type=int, default=0, help="batch sample to draw (default 0)")
    export.add_argument("--depth", type=int, metavar="D",
                        help="3-D layers: draw only depth slice D (default: each channel's "
                             "slices side by side)")
    export.add_argument("--scale", type=int,
                        help=f"pixels per map value (default: maps at least {_MIN_CELL} px; "
                             f"--timeline: {_STRIP_CELL} px a value, the strip at most "
                             f"{_STRIP_SIDE} px where it can)")
    export.add_argument("--duration", type=int, default=200, help="GIF ms per frame (default 200)")
    export.add_argument("-q", "--quiet", action="store_true", help="no progress or summary line on stderr")
    export.add_argument("--overlay", metavar="LAYER",
                        help="draw the maps over this layer of 1 or 3 channels (e.g. the input)")
    export.add_argument("--alpha", type=float, default=0.6,
                        help="the maps' opacity over --overlay, 0..1 (default 0.6)")
    export.add_argument("--top", type=int, metavar="K", help="only the top K channels by --by")
    export.add_argument("--by", choices=render.RANKINGS, default="std",
                        help="what --top ranks by (default std; change: since the kept step before)")
    export.add_argument("--channels", metavar="LIST", help="only these channels, e.g. 3,17,40-45")
    export.add_argument("--timeline", action="store_true",
                        help="draw the tab's timeline instead: one statistic of each channel "
                             "(rows) at each kept step (columns), as a PNG")
    export.add_argument("--stat", choices=_series.SERIES_STATS, default="std",
                        help="the statistic --timeline draws (default std)")
    export.set_defaults(func=_export)
    return parser


# --- ls ----------------------------------------------------------------------------------


def _ls(args) -> int:
    layers = _open(args.logdir).layers()
    if args.json:  # JSON escapes nothing that matters here: names stay exact
        print(json.dumps([info.as_dict() for info in layers], indent=2))
    elif layers:
        rows = [("RUN", "LAYER", "LAYOUT", "SHAPE", "STORED", "ENCODING", "STEPS", "RANGE")]
        for info in layers:
            d = info.as_dict()
            rows.append((
                _name(d["run"], quote=False), _name(d["layer"], quote=False),
                str(d["layout"]), _dims(d["shape"]), _dims(d["stored"]), d["encoding"],
                str(d["steps"]), f"{d['first_step']}..{d['last_step']}",
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if not layers:
        print(f"{_PROG}: no feature maps in {args.logdir!r}", file=sys.stderr)
        return 1
    return 0


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape) if isinstance(shape, list) else "?"


# --- export ------------------------------------------------------------------------------


def _export(args) -> int:
    if args.timeline:
        return _export_timeline(args)
    suffix = os.path.splitext(args.output)[1].lower()
    if suffix not in (".png", ".gif"):
        raise _UsageError(f"output must end in .png or .gif, got {args.output!r}")
    if args.steps is not None and suffix != ".gif":
        raise _UsageError(f"--steps makes an animation; give a .gif output, not {args.output!r}")
    for name in ("sample", "duration"):
        if getattr(args, name) < 0:
            raise _UsageError(f"--{name} must be non-negative, got {getattr(args, name)}")
    image_module = _output_checked(args)

    reader = _open(args.logdir)
    info = _pick_layer(reader, args.run, args.layer)
    steps = _pick_steps(info, args.step, args.steps)
    stored = info.header["stored"]
    if args.sample >= stored[0]:
        raise _UsageError(
            f"--sample {args.sample} is not stored; layer {_name(info.layer)} has samples "
            f"0..{stored[0] - 1}"
        )
    if args.top is not None and args.top < 1:
        raise _UsageError(f"--top must be a positive integer, got {args.top}")
    if args.depth is not None:
        try:
            render.check_depth(info.header, args.depth)
        except ValueError as e:
            raise _UsageError(f"--{e} (layer {_name(info.layer)})") from None
    if not 0.0 <= args.alpha <= 1.0:
        raise _UsageError(f"--alpha must be in 0..1, got {args.alpha}")
    under = _pick_layer(reader, info.run, args.overlay) if args.overlay else None
    fixed = None
    if args.norm == "fixed":
        fixed = render.fixed_range(
            reader.records(info.run, info.tag, values=False), sample=args.sample
        )

    frames: List[np.ndarray] = []
    progress = _Progress(len(steps), enabled=len(steps) > 1 and not args.quiet)
    for record in reader.records(info.run, info.tag, step=steps):
        if args.sample >= record.values.shape[0]:
            continue  # a step that stored fewer samples than the newest
        height = record.values.shape[2] // render.depth_of(record.header)  # of a slice
        scale = args.scale or max(1, -(-_MIN_CELL // max(height, record.values.shape[3])))
        try:
            previous = _before(reader, info, record.step) if args.by == "change" else None
            picked = render.pick_channels(record, channels=args.channels, top=args.top, by=args.by,
                                          sample=args.sample, previous=previous)
            frames.append(render.render_record(
                record, sample=args.sample, colormap=args.colormap, norm=args.norm,
                fixed=fixed, scale=scale, channels=picked, alpha=args.alpha,
                background=under and _nearest(reader, under, record.step), depth=args.depth,
            ))
        except ValueError as e:
            raise _UsageError(str(e)) from None
        progress.update()
    progress.close()
    if not frames:
        raise _UsageError(
            f"no readable step of layer {_name(info.layer)} among the steps asked for"
        )

    images = [image_module.fromarray(frame) for frame in _same_size(frames)]
    try:
        if suffix == ".png":
            images[0].save(args.output, format="PNG")
        else:
            images[0].save(
                args.output, format="GIF", save_all=True, append_images=images[1:],
                duration=args.duration, loop=0,
            )
    except OSError as e:
        raise _UsageError(f"cannot write {args.output!r}: {e}") from None
    what = f"step {steps[0]}" if len(frames) == 1 else f"{len(frames)} steps"
    if not args.quiet:
        where = f"{_name(info.run, quote=False)}/{_name(info.layer, quote=False)}"
        print(f"wrote {args.output} ({where}, {what})", file=sys.stderr)
    return 0


def _before(reader: FeatureMapReader, info: LayerInfo, step: int):
    """The kept step before `step` of a layer, read with its values, or None."""
    earlier = [s for s in info.steps if s < step]
    return next(iter(reader.records(info.run, info.tag, step=[earlier[-1]])), None) if earlier else None


def _nearest(reader: FeatureMapReader, info: LayerInfo, step: int):
    """The kept step of a layer nearest to `step`, read with its values."""
    near = min(info.steps, key=lambda s: (abs(s - step), s))
    return next(iter(reader.records(info.run, info.tag, step=[near])))


def _output_checked(args):
    """Checks what every export shares (``--scale``, a local ``-o`` in a folder that exists)
    and returns PIL's Image module."""
    if args.scale is not None and args.scale < 1:
        raise _UsageError(f"--scale must be a positive integer, got {args.scale}")
    if _fs.is_remote(args.output):
        raise _UsageError(f"export writes a local file; got {args.output!r}")
    image_module = _pillow()
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise _UsageError(f"output directory {out_dir!r} does not exist")
    return image_module


def _export_timeline(args) -> int:
    """``export --timeline``: the heat strip of one statistic over the kept steps."""
    if os.path.splitext(args.output)[1].lower() != ".png":
        raise _UsageError(f"--timeline writes a PNG; give a .png output, not {args.output!r}")
    if args.step is not None or args.steps is not None:
        raise _UsageError("--timeline draws every kept step; drop --step/--steps")
    if args.depth is not None:
        raise _UsageError("--timeline draws statistics of whole channels; drop --depth")
    if args.sample < 0:
        raise _UsageError(f"--sample must be non-negative, got {args.sample}")
    image_module = _output_checked(args)
    reader = _open(args.logdir)
    info = _pick_layer(reader, args.run, args.layer)
    try:
        steps, array = reader.series(info.run, info.tag, stat=args.stat, sample=args.sample)
    except ValueError as e:
        raise _UsageError(str(e)) from None
    scale = args.scale or max(1, min(_STRIP_CELL, _STRIP_SIDE // max(array.shape, default=1)))
    image = render.render_series(array, colormap=args.colormap, scale=scale)
    try:
        image_module.fromarray(image).save(args.output, format="PNG")
    except OSError as e:
        raise _UsageError(f"cannot write {args.output!r}: {e}") from None
    if not args.quiet:
        where = f"{_name(info.run, quote=False)}/{_name(info.layer, quote=False)}"
        print(f"wrote {args.output} ({where}, {args.stat} of {array.shape[1]} channels "
              f"x {len(steps)} steps)", file=sys.stderr)
    return 0


def _pick_layer(reader: FeatureMapReader, run: Optional[str], layer: Optional[str]) -> LayerInfo:
    runs = reader.runs()
    if not runs:
        raise _UsageError(f"no feature maps in {reader.logdir!r}")
    if run is None:
        if layer is not None:  # the runs that have this layer
            having = sorted({i.run for i in reader.layers() if layer in (i.layer, i.tag)})
            runs = having or runs
        if len(runs) > 1:
            raise _UsageError(f"several runs; pick one with --run: {_names(runs)}")
        run = runs[0]
    elif run not in runs:
        raise _UsageError(f"unknown run {_name(run)}; valid runs: {_names(runs)}")
    layers = reader.layers(run)
    if not layers:  # every step it logged was unreadable
        raise _UsageError(f"run {_name(run)} has no readable feature maps")
    names = [info.layer for info in layers]
    if layer is None:
        if len(layers) != 1:
            raise _UsageError(
                f"run {_name(run)} has several layers; pick one with --layer: {_names(names)}"
            )
        return layers[0]
    for info in layers:
        if layer in (info.layer, info.tag):
            return info
    raise _UsageError(
        f"unknown layer {_name(layer)} in run {_name(run)}; valid layers: {_names(names)}"
    )


def _pick_steps(info: LayerInfo, step: Optional[int], steps: Optional[str]) -> List[int]:
    kept = list(info.steps)
    if steps is None:
        if step is None:
            return [kept[-1]]
        if step not in kept:
            raise _UsageError(
                f"unknown step {step} of layer {_name(info.layer)}; valid steps: {_steps(kept)}"
            )
        return [step]
    if steps == "all":
        return kept
    try:
        first, last = (int(part) for part in steps.split(":"))
    except ValueError:
        raise _UsageError(f"--steps must be 'all' or 'A:B' (two integers), got {steps!r}") from None
    chosen = [s for s in kept if first <= s <= last]
    if not chosen:
        raise _UsageError(
            f"no kept step of layer {_name(info.layer)} in {first}..{last}; "
            f"valid steps: {_steps(kept)}"
        )
    return chosen


def _same_size(frames: List[np.ndarray]) -> List[np.ndarray]:
    """Pad frames to the largest (the channel count can change within a run) with the gap colour."""
    height = max(f.shape[0] for f in frames)
    width = max(f.shape[1] for f in frames)
    result = []
    for frame in frames:
        if frame.shape[:2] != (height, width):
            padded = np.empty((height, width, 3), dtype=np.uint8)
            padded[:] = render.GAP_RGB
            padded[:frame.shape[0], :frame.shape[1]] = frame
            frame = padded
        result.append(frame)
    return result


# --- helpers -----------------------------------------------------------------------------


def _open(logdir: str) -> FeatureMapReader:
    try:
        return FeatureMapReader(logdir)
    except (OSError, ValueError) as e:  # missing path or bucket, no access, unknown protocol
        raise _UsageError(str(e)) from None


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise _UsageError("export needs Pillow: pip install pillow") from None
    return Image


def _names(names: List[str]) -> str:
    shown = ", ".join(_name(n) for n in names[:20])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


def _steps(steps: List[int]) -> str:
    if len(steps) <= 20:
        return ", ".join(str(s) for s in steps)
    return f"{len(steps)} steps from {steps[0]} to {steps[-1]}: " + ", ".join(
        str(s) for s in steps[:10]
    ) + ", ..."


class _Progress:
    """tqdm on stderr when installed, else a plain counter; silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self._total, self._done, self._bar = total, 0, None
        self._enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, unit="step", file=sys.stderr, desc=_PROG)

    def update(self) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self._enabled:
            print(f"\r{_PROG}: {self._done}/{self._total} steps", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._enabled:
            print(file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

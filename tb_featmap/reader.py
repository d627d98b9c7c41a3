"""Read feature maps from event files in Python, without starting a TensorBoard server.

Reads through TensorBoard's own loading code (the ``EventMultiplexer`` of the
``--load_fast=false`` path), keeping every step, and judges and decodes each step through
``tb_featmap/_series.py``, as the plugin does. A step logged twice (a run restarted from an
older checkpoint) is read as TensorBoard's default loader serves it: the newer writer's data
(see ``_series.follow_restarts``). Imports no torch: it works wherever TensorBoard does.
"""

import dataclasses
import os
import warnings
from collections.abc import Collection
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np

from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.compat.proto import summary_pb2, types_pb2

from tb_featmap import _crc, _fs, _series, metadata, payload
from tb_featmap._series import LayerInfo

__all__ = ["FeatureMapRecord", "LayerInfo", "FeatureMapReader", "read", "to_dataframe"]

_SHOWN = 20  # names or steps listed in an error message

StepArg = Union[None, int, Collection]


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureMapRecord:
    """One logged step of one layer.

    Attributes:
        run: The run, as TensorBoard names it (``"."`` for event files directly in the logdir).
        layer: The layer name as logged, with its prefix: the tag without ``feature_maps/``.
        tag: The full tag, e.g. ``"feature_maps/features.0"``.
        step: The global step.
        wall_time: Seconds since the epoch when the step was logged.
        values: The stored maps, float32 ``[N, C, H, W]`` (non-finite values of a uint8 payload
            are NaN), read-only; ``None`` when read with ``values=False``.
        stats: Statistic name (``payload.STAT_FIELDS``: min, max, mean, std, zero_fraction,
            nonfinite) to a float32 ``[N, C]`` array, computed by the writer on the
            full-resolution activations.
        header: The step header (layout, shape, dtype, stored, downsample, encoding, dropped,
            seq; see ``tb_featmap/payload.py``).
    """

    run: str
    layer: str
    tag: str
    step: int
    wall_time: float
    values: Optional[np.ndarray]
    stats: Mapping[str, np.ndarray]
    header: Mapping[str, Any]


class _Datum(NamedTuple):
    """One step of a series as the multiplexer loaded it; ``values`` are its blobs."""

    step: int
    wall_time: float
    values: Tuple[bytes, ...]


class FeatureMapReader:
    """Load a log directory once, then list and read its feature maps.

    Every step is kept (``tensor_size_guidance={"feature_maps": 0}``), unlike a TensorBoard
    server's default sampling. Steps that cannot be used are skipped with one warning per
    kind and call: payloads of a newer format version (upgrade tb_featmap to read them) and
    damaged ones.

    Args:
        logdir: A directory of runs, as given to ``tensorboard --logdir``: a local path,
            ``s3://bucket/folder``, or any path TensorBoard's file layer reads.

    Raises:
        TypeError: If ``logdir`` is not a str or path.
        FileNotFoundError: If ``logdir``, or its bucket, does not exist.
        NotADirectoryError: If ``logdir`` is not a directory.
        OSError: If object storage refuses access or cannot be reached.
        ValueError: If no installed file system reads the logdir's protocol.

    Examples::

        >>> reader = FeatureMapReader("runs")
        >>> [(i.run, i.layer, i.header["stored"], len(i.steps)) for i in reader.layers()]
        [('alexnet', 'features.0', [1, 64, 55, 55], 10), ('alexnet', 'features.3', [1, 192, 27, 27], 10)]
        >>> rec = next(reader.records(layer="features.0", step=90))
        >>> rec.values.shape, rec.stats["max"].shape
        ((1, 64, 55, 55), (1, 64))
    """

    def __init__(self, logdir: Union[str, "os.PathLike[str]"]):
        if not isinstance(logdir, (str, os.PathLike)):
            raise TypeError(f"logdir must be a str or path, got {type(logdir).__name__}")
        path = os.fspath(logdir)
        _fs.check_logdir(path)
        self.logdir = path
        _crc.install_for_reader()  # 0.3 s per MB read otherwise
        self._multiplexer = plugin_event_multiplexer.EventMultiplexer(
            tensor_size_guidance={metadata.PLUGIN_NAME: 0}
        )
        self._multiplexer.AddRunsFromDirectory(path)
        self._multiplexer.Reload()
        self._series = self._list_series()

    def runs(self) -> List[str]:
        """The runs that hold feature maps, sorted."""
        return sorted({run for run, _ in self._series})

    def layers(self, run: Optional[str] = None, layer: Optional[str] = None) -> List[LayerInfo]:
        """Each selected layer with its kept steps and newest readable header.

        Args:
            run: Only this run. Default: all.
            layer: Only this layer name (or full tag). Default: all.

        Returns:
            ``LayerInfo`` records sorted by run, then in logging order (see
            ``_series.layer_order``). A layer none of whose steps
            decodes is left out. ``skipped`` lists the steps newer than the describing one
            that did not decode.

        Raises:
            TypeError: If ``run`` or ``layer`` is not a str.
            ValueError: If ``run`` or ``layer`` names nothing here; the message lists the
                valid names.
        """
        warned: set = set()
        result = []
        for (run_name, tag), data in self._read_series(self._select(run, layer)).items():

            def read_header(datum):
                return _series.decode_step(datum.step, _series.read_blobs(datum, 1, _blob)).header

            _, header, failed = _series.newest_readable(data, read_header)
            for error in failed:
                _warn_step(warned, run_name, tag, error)
            if header is not None:
                skipped = [error.step for error in failed]
                result.append(_series.describe_layer(
                    run_name, tag, (d.step for d in data), header, skipped
                ))
        return _series.layer_order(result)

    def records(
        self,
        run: Optional[str] = None,
        layer: Optional[str] = None,
        *,
        step: StepArg = None,
        values: bool = True,
    ) -> Iterator[FeatureMapRecord]:
        """Decode the selected steps one at a time, oldest first within each layer.

        Args:
            run: Only this run. Default: all.
            layer: Only this layer name (or full tag). Default: all.
            step: Only this step, or these steps (a collection of ints). Default: all kept.
            values: Decode the maps. Default ``True``; ``False`` reads only headers and
                statistics (``values`` is then ``None``), which is much faster.

        Yields:
            ``FeatureMapRecord`` per readable step, by run, then tag, then step.

        Raises:
            TypeError: If an argument has the wrong type.
            ValueError: If ``run``, ``layer`` or a step names nothing selected; the message
                lists the valid names or steps.
        """
        if not isinstance(values, bool):
            raise TypeError(f"values must be a bool, got {type(values).__name__}")
        wanted = _check_steps(step)
        series = self._read_series(self._select(run, layer))
        if wanted is not None:
            present = {d.step for data in series.values() for d in data}
            missing = sorted(wanted - present)
            if missing:
                raise ValueError(
                    f"step {missing[0]} is not among the kept steps of the selection; "
                    f"valid steps: {_listing(sorted(present))}"
                )
        return self._records(series, wanted, values)

    def series(
        self, run: Optional[str] = None, layer: Optional[str] = None, *, stat: str,
        sample: int = 0,
    ) -> Tuple[List[int], np.ndarray]:
        """One statistic of every channel at every kept step of one layer: what the
        plugin's ``series`` route serves, and ``tb-featmap export --timeline`` draws.

        Args:
            run: The run. Default: the only run that holds ``layer``.
            layer: The layer name (or full tag). Default: the only layer of the selection.
            stat: One of ``payload.STAT_FIELDS``: min, max, mean, std, zero_fraction, nonfinite.
            sample: The batch sample. Default 0.

        Returns:
            ``(steps, array)``: the kept steps, ascending, and float32 ``[steps, channels]``
            (channels as the newest readable step holds them). A row is NaN where its step
            is unreadable, holds another channel count or too few samples.

        Raises:
            TypeError: If an argument has the wrong type.
            ValueError: If the selection is not exactly one layer (the message lists the
                valid names), ``stat`` is unknown, or no step holds ``sample``.

        Examples::

            >>> steps, std = reader.series("alexnet", "features.0", stat="std")
            >>> len(steps), std.shape
            (10, (10, 64))
        """
        if not isinstance(stat, str):
            raise TypeError(f"stat must be a str, got {type(stat).__name__}")
        if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)):
            raise TypeError(f"sample must be an int, got {type(sample).__name__}")
        if stat not in _series.SERIES_STATS:
            raise ValueError(
                f"unknown statistic {stat!r}; valid: {', '.join(_series.SERIES_STATS)}"
            )
        if sample < 0:
            raise ValueError(f"sample must be non-negative, got {sample}")
        selected = self._select(run, layer)
        if len(selected) != 1:
            names = sorted(f"{r}/{metadata.layer_name(t)}" for r, t in selected)
            raise ValueError(
                f"series reads one layer; the selection holds {len(selected)}: "
                f"{_listing(names)}. Hint: pass run= and layer="
            )
        (key, data), = self._read_series(selected).items()
        builder = _series.SeriesBuilder(stat, int(sample), len(data))
        warned: set = set()
        for row in reversed(range(len(data))):  # newest first: it sets the channel count
            datum = data[row]
            try:
                step = _series.decode_step(datum.step, _series.read_blobs(datum, 2, _blob))
            except _series.StepError as error:
                _warn_step(warned, key[0], key[1], error)
                continue
            builder.add(row, step.stats)
        array = builder.result()
        if array is None:
            if builder.samples:
                raise ValueError(
                    f"sample {sample} is not stored; this layer has samples "
                    f"0..{builder.samples - 1}"
                )
            raise ValueError(f"no readable step in {key[0]!r}/{key[1]!r}")
        return [d.step for d in data], array

    # --- internals ----------------------------------------------------------------------

    def _records(self, series, wanted, values) -> Iterator[FeatureMapRecord]:
        warned: set = set()
        count = 3 if values else 2
        for (run, tag), data in series.items():
            for datum in data:
                if wanted is not None and datum.step not in wanted:
                    continue
                try:
                    step = _series.decode_step(datum.step, _series.read_blobs(datum, count, _blob))
                except _series.StepError as error:
                    _warn_step(warned, run, tag, error)
                    continue
                if step.values is not None:
                    step.values.flags.writeable = False
                yield FeatureMapRecord(
                    run=run,
                    layer=metadata.layer_name(tag),
                    tag=tag,
                    step=datum.step,
                    wall_time=datum.wall_time,
                    values=step.values,
                    stats={name: step.stats[:, :, i] for i, name in enumerate(payload.STAT_FIELDS)},
                    header=step.header,
                )

    def _list_series(self) -> List[Tuple[str, str]]:
        """(run, tag) of every series of a format version this reader knows, sorted."""
        mapping = self._multiplexer.PluginRunToTagToContent(metadata.PLUGIN_NAME)
        warned: set = set()
        result = []
        for run in sorted(mapping):
            for tag in sorted(mapping[run]):
                data_class = self._multiplexer.SummaryMetadata(run, tag).data_class
                if data_class != summary_pb2.DATA_CLASS_BLOB_SEQUENCE:
                    continue  # as TensorBoard's data provider: not a blob sequence
                try:
                    _series.check_series(mapping[run][tag])
                except _series.SeriesSkipped as e:
                    _warn_once(
                        warned, "newer" if e.newer else "metadata",
                        f"tb_featmap: skipping {_series.show_name(run)}/{_series.show_name(tag)}"
                        f" (and any other series like it): {e}",
                    )
                    continue
                result.append((run, tag))
        return result

    def _select(self, run, layer) -> List[Tuple[str, str]]:
        for name, value in (("run", run), ("layer", layer)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
        selected = list(self._series)
        if run is not None:
            selected = [key for key in selected if key[0] == run]
            if not selected:
                raise ValueError(
                    f"run {run!r} has no feature maps in {self.logdir!r}; valid runs: "
                    f"{_listing(self.runs())}"
                )
        if layer is not None:
            candidates = selected
            selected = [key for key in candidates if layer in (key[1], metadata.layer_name(key[1]))]
            if not selected:
                where = f"run {run!r}" if run is not None else repr(self.logdir)
                names = sorted({metadata.layer_name(tag) for _, tag in candidates})
                raise ValueError(f"layer {layer!r} is not in {where}; valid layers: {_listing(names)}")
        return selected

    def _read_series(self, keys) -> Dict[Tuple[str, str], list]:
        """(run, tag) -> its steps, ascending, each once: as TensorBoard's default loader
        serves them (see ``_series.follow_restarts``)."""
        result = {}
        for run, tag in keys:
            events = self._multiplexer.Tensors(run, tag)  # in the order they were read
            result[(run, tag)] = _series.follow_restarts(_datum(e) for e in events)
        return result


def _datum(event) -> _Datum:
    proto = event.tensor_proto
    is_blobs = proto.dtype == types_pb2.DT_STRING and len(proto.tensor_shape.dim) == 1
    return _Datum(event.step, event.wall_time, tuple(proto.string_val) if is_blobs else ())


def _blob(blob: bytes) -> bytes:
    return blob  # a _Datum holds its blobs themselves


def read(
    logdir: Union[str, "os.PathLike[str]"],
    run: Optional[str] = None,
    layer: Optional[str] = None,
    *,
    step: StepArg = None,
    values: bool = True,
    as_dataframe: bool = False,
):
    """Read logged feature maps into memory, without a TensorBoard server.

    Args:
        logdir: A directory of runs, as given to ``tensorboard --logdir``: a local path,
            ``s3://bucket/folder``, or any path TensorBoard's file layer reads.
        run: Only this run. Default: all.
        layer: Only this layer, by the name it was logged under (``"features.0"``, or with
            a prefix ``"probe/features.0"``) or its full tag. Default: all.
        step: Only this step or these steps. Default: every kept step.
        values: Decode the maps too. Default ``True``; ``False`` is faster when the
            statistics suffice.
        as_dataframe: Return ``to_dataframe(records)`` instead of the records. Default
            ``False``.

    Returns:
        A list of ``FeatureMapRecord`` (by run, tag, step), or with ``as_dataframe`` a
        pandas DataFrame with one row per map.

    Raises:
        TypeError: If an argument has the wrong type.
        FileNotFoundError: If ``logdir``, or its bucket, does not exist.
        OSError: If object storage refuses access or cannot be reached.
        ValueError: If ``run``, ``layer`` or ``step`` names nothing in the logdir (the
            message lists the valid names), or no file system reads the logdir's protocol.
        ImportError: If ``as_dataframe`` is set and pandas is not installed.

    Examples::

        >>> records = read("runs", run="alexnet", layer="features.0")
        >>> [(r.step, r.values.shape) for r in records][:2]
        [(0, (1, 64, 55, 55)), (10, (1, 64, 55, 55))]
        >>> records[-1].stats["zero_fraction"].shape
        (1, 64)
    """
    if not isinstance(as_dataframe, bool):
        raise TypeError(f"as_dataframe must be a bool, got {type(as_dataframe).__name__}")
    if as_dataframe:
        _pandas()  # fail before the (slow) read
    records = list(FeatureMapReader(logdir).records(run, layer, step=step, values=values))
    return to_dataframe(records) if as_dataframe else records


def to_dataframe(records):
    """One row per stored map (step, sample, channel) of ``records``: a tidy table.

    Args:
        records: ``FeatureMapRecord`` objects, as ``read`` returns them.

    Returns:
        A ``pandas.DataFrame`` with columns ``run, layer, tag, step, wall_time, sample,
        channel``, one per statistic (``min, max, mean, std, zero_fraction, nonfinite``)
        and ``map`` (the ``H x W`` float32 array, or ``None`` for records read without
        values).

    Raises:
        ImportError: If pandas is not installed.
        TypeError: If an element of ``records`` is not a ``FeatureMapRecord``.

    Examples::

        >>> df = to_dataframe(read("runs", layer="features.0"))
        >>> df.groupby("channel")["zero_fraction"].mean().nlargest(3)
    """
    pandas = _pandas()
    columns: Dict[str, list] = {
        name: [] for name in ("run", "layer", "tag", "step", "wall_time", "sample", "channel")
    }
    columns.update({name: [] for name in payload.STAT_FIELDS})
    columns["map"] = []
    for record in records:
        if not isinstance(record, FeatureMapRecord):
            raise TypeError(f"records must hold FeatureMapRecord, got {type(record).__name__}")
        n, c = record.stats["min"].shape
        for sample in range(n):
            for channel in range(c):
                columns["run"].append(record.run)
                columns["layer"].append(record.layer)
                columns["tag"].append(record.tag)
                columns["step"].append(record.step)
                columns["wall_time"].append(record.wall_time)
                columns["sample"].append(sample)
                columns["channel"].append(channel)
                for name in payload.STAT_FIELDS:
                    columns[name].append(float(record.stats[name][sample, channel]))
                columns["map"].append(
                    None if record.values is None else record.values[sample, channel]
                )
    return pandas.DataFrame(columns)


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "as_dataframe / to_dataframe need pandas, which is not installed: pip install pandas"
        ) from None
    return pandas


def _check_steps(step: StepArg) -> Optional[set]:
    if step is None:
        return None
    items = [step] if not isinstance(step, Collection) or isinstance(step, (str, bytes)) else list(step)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
            raise TypeError(
                f"step must be an int or a collection of ints, got {type(item).__name__}"
            )
    return {int(item) for item in items}


def _listing(names: list) -> str:
    shown = ", ".join(
        _series.show_name(n) if isinstance(n, str) else str(n) for n in names[:_SHOWN]
    )
    more = f", ... ({len(names)} in all)" if len(names) > _SHOWN else ""
    return f"{shown}{more}" if names else "(none)"


def _warn_once(warned: set, kind: str, message: str) -> None:
    if kind not in warned:
        warned.add(kind)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _warn_step(warned: set, run: str, tag: str, error: "_series.StepError") -> None:
    where = f"{_series.show_name(run)}/{_series.show_name(tag)}"
    if error.newer:
        kind, what = "newer", "steps of a newer format"
    else:
        kind, what = "damaged", "unreadable steps"
    _warn_once(warned, kind, f"tb_featmap: skipping {what}, first {where} {error}")

"""The TensorBoard side: routes of the Feature Maps plugin, and its loader.

Imports no torch. Reads only through ``context.data_provider``, so both of TensorBoard's
loaders work: the Rust data server (the default) and ``--load_fast=false``. Routes and their
JSON are documented in ``http_api.md`` beside this file.
"""

import collections
import concurrent.futures
import io
import itertools
import logging
import math
import threading
from importlib import resources
from typing import Dict, Optional, Tuple

import numpy as np
from werkzeug import wrappers

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin

from tb_featmap import _crc, _series, metadata, payload

__all__ = ["FeatureMapsLoader", "FeatureMapsPlugin", "DEFAULT_SAMPLES"]

logger = logging.getLogger(__name__)

# Steps kept per layer when the user passes no --samples_per_plugin for this plugin. Enough
# to scrub every logged step of an ordinary run; TensorBoard holds them in memory, so a run
# costs about DEFAULT_SAMPLES x (bytes per step of a layer) per layer. `0` keeps all.
DEFAULT_SAMPLES = 1000
_CACHED_SERIES = 64
# Headers and statistics of steps, remembered for /stats and /maps; a step of more than
# _CACHED_STEP_BYTES (a layer of over ~20,000 maps) is not: too few would fit to help.
_STEP_CACHE_BYTES = 32 << 20
_CACHED_STEP_BYTES = _STEP_CACHE_BYTES // 64
# /stats reads up to _STATS_WINDOW steps at once, fewer when their statistics are large: at
# most _STATS_BYTES_IN_FLIGHT of them (but always one step). Each thread that touches a
# large blob keeps its own malloc arena, so parallel reads of large steps cost memory.
_STATS_WINDOW = 32
_STATS_BYTES_IN_FLIGHT = 2 << 20
# /series answers remembered, in bytes; one answer of over a quarter of it is not.
_SERIES_ANSWER_BYTES = 64 << 20
# The scalars plugin's name (its data, read through the data provider), and the points
# of one scalar /scalars sends: TensorBoard's own default sampling keeps 1000.
_SCALARS_PLUGIN = "scalars"
_SCALAR_POINTS = 10000
_BAD_LAYERS = 256  # layers whose unreadable steps are remembered
_ONE_YEAR = 365 * 24 * 3600
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


class FeatureMapsLoader(base_plugin.TBLoader):
    """Registered through the ``tensorboard_plugins`` entry point."""

    def fix_flags(self, flags):
        """Keep DEFAULT_SAMPLES steps per layer unless ``--samples_per_plugin`` says otherwise.

        TensorBoard keeps only 10 blob-sequence samples per tag by default, too few to
        scrub through training. This runs before the data provider starts, and also makes
        its Python event reader check checksums natively (see ``_crc.py``).
        """
        samples = getattr(flags, "samples_per_plugin", None)
        if isinstance(samples, dict) and metadata.PLUGIN_NAME not in samples:
            samples[metadata.PLUGIN_NAME] = DEFAULT_SAMPLES
        # The --load_fast=false loader checks each record's CRC32C in pure Python, 0.3 s per
        # MB; feature maps are megabytes per step. Same checksum, computed natively.
        _crc.install_for_reader()

    def load(self, context):
        return FeatureMapsPlugin(context)


class FeatureMapsPlugin(base_plugin.TBPlugin):
    """Serves feature-map summaries to the Feature Maps tab: routes and their caches.

    How a step is read and judged is decided in ``tb_featmap/_series.py``.
    """

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        self._data_provider = context.data_provider
        hint = (context.sampling_hints or {}).get(self.plugin_name, DEFAULT_SAMPLES)
        self._downsample = hint or _series.ALL
        self._series_cache: "collections.OrderedDict" = collections.OrderedDict()
        self._step_cache: "collections.OrderedDict" = collections.OrderedDict()
        self._step_cache_bytes = 0
        self._tag_cache: Dict[tuple, tuple] = {}
        # (experiment, run, tag, stat, sample) -> (steps version, .npy) of /series.
        self._answer_cache: "collections.OrderedDict" = collections.OrderedDict()
        self._answer_cache_bytes = 0
        # (experiment, run, tag) -> {step: wall time} of steps found unreadable.
        self._bad_steps: "collections.OrderedDict" = collections.OrderedDict()
        # Two pools, so that a long /stats never queues ahead of the blobs of a /maps.
        self._pool = concurrent.futures.ThreadPoolExecutor(12, thread_name_prefix="feature_maps_blobs")
        self._stats_pool = concurrent.futures.ThreadPoolExecutor(
            _STATS_WINDOW, thread_name_prefix="feature_maps_stats"
        )
        self._lock = threading.Lock()
        self._warned = set()
        self._static = _static_files()

    def get_plugin_apps(self):
        apps = {
            "/tags": self._serve_tags,
            "/steps": self._serve_steps,
            "/maps": self._serve_maps,
            "/stats": self._serve_stats,
            "/npy": self._serve_npy,
            "/series": self._serve_series,
            "/scalar_tags": self._serve_scalar_tags,
            "/scalars": self._serve_scalars,
        }
        for name in self._static:
            apps["/" + name] = self._serve_static
        return apps

    def is_active(self):
        return False  # TensorBoard's `list_plugins` on the data provider suffices

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Feature Maps")

    # --- routes -----------------------------------------------------------------------

    @wrappers.Request.application
    def _serve_static(self, request):
        name = request.path.rsplit("/", 1)[-1]
        if name not in self._static:  # `index.js/`: TensorBoard routes it here too
            raise errors.NotFoundError(f"no such file: {_quote(request.path)}")
        body, content_type = self._static[name]
        return http_util.Respond(request, body, content_type)

    @wrappers.Request.application
    def _serve_tags(self, request):
        ctx, experiment = _context(request)
        return http_util.Respond(request, self._tags_impl(ctx, experiment), "application/json")

    @wrappers.Request.application
    def _serve_steps(self, request):
        ctx, experiment, run, tag = _layer_args(request)
        series = self._read_series(ctx, experiment, run, tag)
        body = [{"step": step, "wall_time": datum.wall_time} for step, datum in series.items()]
        return http_util.Respond(request, body, "application/json")

    @wrappers.Request.application
    def _serve_maps(self, request):
        step, wall_time, meta, data_blob = self._requested_step(request)
        # With the wall time in the URL the content can never change: cache it for good.
        # Without it, a restarted run could rewrite the step, so the browser must ask again.
        expires = _ONE_YEAR if wall_time is not None else 0
        return http_util.Respond(
            request,
            payload.wire_payload(meta.header_blob, meta.stats_blob, data_blob),
            "application/octet-stream",
            expires=expires,
        )

    @wrappers.Request.application
    def _serve_stats(self, request):
        ctx, experiment, run, tag = _layer_args(request)
        sample = _sample_arg(request)
        body = _json_arrays(self._stats_impl(ctx, experiment, run, tag, sample))
        return http_util.Respond(request, body, "application/json")

    @wrappers.Request.application
    def _serve_series(self, request):
        ctx, experiment, run, tag = _layer_args(request)
        stat = _string_arg(request, "stat")
        if stat not in _series.SERIES_STATS:
            raise errors.InvalidArgumentError(
                f"stat must be one of {', '.join(_series.SERIES_STATS)}"
            )
        sample = _sample_arg(request)
        steps, body = self._series_impl(ctx, experiment, run, tag, stat, sample)
        headers = [("X-Feature-Maps-Steps", f"{len(steps)} {steps[0]} {steps[-1]}")]
        return http_util.Respond(request, body, "application/octet-stream", headers=headers)

    @wrappers.Request.application
    def _serve_scalar_tags(self, request):
        ctx, experiment = _context(request)
        return http_util.Respond(request, self._scalar_tags_impl(ctx, experiment), "application/json")

    @wrappers.Request.application
    def _serve_scalars(self, request):
        ctx, experiment, run, tag = _layer_args(request)
        body = self._scalars_impl(ctx, experiment, run, tag)
        return http_util.Respond(request, body, "application/json")

    @wrappers.Request.application
    def _serve_npy(self, request):
        step, _, meta, data_blob = self._requested_step(request)
        try:
            values = payload.decode_values(meta.header, meta.stats, data_blob)
        except payload.PayloadError as e:
            raise errors.NotFoundError(f"step {step} cannot be read: {e}")
        buffer = io.BytesIO()
        np.save(buffer, values, allow_pickle=False)
        headers = [("Content-Disposition", f'attachment; filename="step{step}.npy"')]
        return http_util.Respond(request, buffer.getvalue(), "application/octet-stream", headers=headers)

    def _requested_step(self, request):
        """Parse run, tag, step and an optional wall_time; read that step.

        Returns:
            (step, wall_time or None, _StepMeta, data blob).
        """
        ctx, experiment, run, tag = _layer_args(request)
        step = _int_arg(request, "step", signed=True)  # TensorBoard lists negative steps
        wall_time = _float_arg(request, "wall_time", required=False)
        datum = self._datum(ctx, experiment, run, tag, step)
        if wall_time is not None and wall_time != datum.wall_time:
            raise errors.NotFoundError(f"step {step} was rewritten; reload the step list")
        meta, data_blob = self._step(ctx, experiment, run, tag, datum, with_data=True)
        return step, wall_time, meta, data_blob

    # --- pure parts ---------------------------------------------------------------------

    def _tags_impl(self, ctx, experiment) -> Dict[str, Dict[str, dict]]:
        mapping = self._data_provider.list_blob_sequences(
            ctx, experiment_id=experiment, plugin_name=self.plugin_name
        )
        infos = []
        for run, tags in mapping.items():
            for tag, series_meta in tags.items():
                if not self._series_ok(run, tag, series_meta.plugin_content):
                    continue
                # Re-describe a layer only when TensorBoard has loaded something new for it.
                version = (series_meta.max_step, series_meta.max_wall_time)
                cached = self._tag_cache.get((experiment, run, tag))
                if cached is not None and cached[0] == version:
                    described = cached[1]
                else:
                    described = self._newest_header(ctx, experiment, run, tag)
                    self._tag_cache[(experiment, run, tag)] = (version, described)
                if described is not None:
                    steps, header = described
                    skipped = self._bad(experiment, run, tag)
                    infos.append(_series.describe_layer(run, tag, steps, header, skipped))
        result = {}
        for info in _series.layer_order(infos):  # JSON keeps this order
            result.setdefault(info.run, {})[info.tag] = self._tag_json(info)
        return result

    def _tag_json(self, info: _series.LayerInfo) -> dict:
        """A LayerInfo as `tags` serves it: the keys the tab reads (see http_api.md)."""
        fields = info.as_dict()
        for name in ("run", "tag", "first_step", "last_step"):
            del fields[name]
        fields["maxStep"] = info.steps[-1]
        fields["samplesFlag"] = f"--samples_per_plugin={self.plugin_name}=0"
        return fields

    def _newest_header(self, ctx, experiment, run, tag) -> Optional[Tuple[tuple, dict]]:
        """(kept steps, header of the newest step that decodes), or None if none does."""
        try:
            series = self._read_series(ctx, experiment, run, tag)
        except errors.NotFoundError:
            return None  # gone since it was listed

        def read_header(datum):
            key = (experiment, run, tag, datum.step, datum.wall_time)
            with self._lock:
                meta = self._step_cache.get(key)
                known_bad = self._bad_steps.get(key[:3], {}).get(datum.step) == datum.wall_time
            if meta is not None:
                return meta.header
            if known_bad:
                raise _series.StepError(datum.step, "unreadable (seen before)")
            read = lambda ref: self._data_provider.read_blob(ctx, blob_key=ref.blob_key)
            return _series.decode_step(datum.step, _series.read_blobs(datum, 1, read)).header

        datum, header, failed = _series.newest_readable(list(series.values()), read_header)
        for error in failed:
            self._step_failed(experiment, run, tag, series[error.step], error)
        return None if header is None else (tuple(series), header)

    def _stats_impl(self, ctx, experiment, run, tag, sample) -> dict:
        series = self._read_series(ctx, experiment, run, tag)
        reducer = _series.StatsReducer(sample)
        for _, stats in self._each_step_stats(ctx, experiment, run, tag, list(series.values())):
            if stats is not None:
                reducer.add(stats)
        result = reducer.result()
        if result is None:
            raise errors.NotFoundError(_no_steps(sample, reducer.samples))
        return result

    def _series_impl(self, ctx, experiment, run, tag, stat, sample) -> Tuple[list, bytes]:
        """(kept steps, .npy of float32 [steps, channels]): one statistic over the steps.

        Answers are remembered (up to _SERIES_ANSWER_BYTES) until the layer's steps change.
        """
        series = self._read_series(ctx, experiment, run, tag)
        steps = list(series)
        newest = series[steps[-1]] if steps else None
        version = (len(steps), steps[0] if steps else None, newest and newest.wall_time)
        key = (experiment, run, tag, stat, sample)
        with self._lock:
            cached = self._answer_cache.get(key)
            if cached is not None and cached[0] == version:
                self._answer_cache.move_to_end(key)
                return steps, cached[1]
        builder = _series.SeriesBuilder(stat, sample, len(steps))
        row = {step: i for i, step in enumerate(steps)}
        newest_first = [series[step] for step in reversed(steps)]
        for datum, stats in self._each_step_stats(ctx, experiment, run, tag, newest_first):
            if stats is not None:
                builder.add(row[datum.step], stats)
        array = builder.result()
        if array is None:
            raise errors.NotFoundError(_no_steps(sample, builder.samples))
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        body = buffer.getvalue()
        del array, buffer
        if len(body) <= _SERIES_ANSWER_BYTES // 4:
            with self._lock:
                old = self._answer_cache.pop(key, None)
                self._answer_cache_bytes -= len(old[1]) if old else 0
                self._answer_cache[key] = (version, body)
                self._answer_cache_bytes += len(body)
                while self._answer_cache_bytes > _SERIES_ANSWER_BYTES:
                    self._answer_cache_bytes -= len(self._answer_cache.popitem(last=False)[1][1])
        return steps, body

    def _each_step_stats(self, ctx, experiment, run, tag, data):
        """(datum, its statistics or None if unreadable) for each of `data`, in order.

        A few steps at a time, so that a caller reducing each as it arrives keeps memory
        O(one step); fewer at once when their statistics are large.
        """
        def step_stats(datum):
            return self._step_stats(ctx, experiment, run, tag, datum)

        data, window = iter(data), 1
        while True:
            chunk = list(itertools.islice(data, window))
            if not chunk:
                return
            for datum, stats in zip(chunk, self._stats_pool.map(step_stats, chunk)):
                if stats is not None:
                    fit = _STATS_BYTES_IN_FLIGHT // max(1, stats.nbytes)
                    window = max(1, min(_STATS_WINDOW, fit))
                yield datum, stats

    def _scalar_tags_impl(self, ctx, experiment) -> Dict[str, list]:
        mapping = self._data_provider.list_scalars(
            ctx, experiment_id=experiment, plugin_name=_SCALARS_PLUGIN
        )
        return {run: sorted(tags) for run, tags in mapping.items() if tags}

    def _scalars_impl(self, ctx, experiment, run, tag) -> list:
        result = self._data_provider.read_scalars(
            ctx,
            experiment_id=experiment,
            plugin_name=_SCALARS_PLUGIN,
            downsample=_SCALAR_POINTS,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        data = result.get(run, {}).get(tag)
        if data is None:
            raise errors.NotFoundError(f"no scalars for run {_quote(run)}, tag {_quote(tag)}")
        return [{"step": d.step, "value": d.value} for d in sorted(data, key=lambda d: d.step)]

    # --- data access --------------------------------------------------------------------

    def _read_series(self, ctx, experiment, run, tag) -> Dict[int, provider.BlobSequenceDatum]:
        """Step -> datum for one layer, oldest first. Remembered for the step routes."""
        result = self._data_provider.read_blob_sequences(
            ctx,
            experiment_id=experiment,
            plugin_name=self.plugin_name,
            downsample=self._downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        data = result.get(run, {}).get(tag)
        if data is None:
            raise errors.NotFoundError(f"no feature maps for run {_quote(run)}, tag {_quote(tag)}")
        series = {datum.step: datum for datum in sorted(data, key=lambda d: d.step)}
        with self._lock:
            self._series_cache[(experiment, run, tag)] = series
            self._series_cache.move_to_end((experiment, run, tag))
            while len(self._series_cache) > _CACHED_SERIES:
                self._series_cache.popitem(last=False)
        return series

    def _datum(self, ctx, experiment, run, tag, step) -> provider.BlobSequenceDatum:
        """One step's datum, re-reading the series only when the step is not known yet."""
        with self._lock:
            series = self._series_cache.get((experiment, run, tag))
        if series is None or step not in series:
            series = self._read_series(ctx, experiment, run, tag)
        datum = series.get(step)
        if datum is None:
            raise errors.NotFoundError(f"no step {step} in run {_quote(run)}, tag {_quote(tag)}")
        return datum

    def _read_blobs(self, ctx, datum, count, parallel=False, start=0):
        """Blobs `start` to `count - 1` of a step. `parallel` reads them at once: the Rust
        data server often takes ~40 ms on loopback to send a blob (depending on its size,
        not in proportion to it), so a step's blobs cost one such wait instead of several.
        Not for use inside a pool task.

        Raises:
            _series.StepError: If the step cannot be read.
        """
        def read(ref):
            return self._data_provider.read_blob(ctx, blob_key=ref.blob_key)

        map_fn = self._pool.map if parallel else map
        return _series.read_blobs(datum, count, read, start=start, map_fn=map_fn)

    def _step_stats(self, ctx, experiment, run, tag, datum) -> Optional[np.ndarray]:
        """One step's statistics, or None (warned once) if the step cannot be read."""
        try:
            return self._step(ctx, experiment, run, tag, datum)[0].stats
        except errors.NotFoundError:
            return None

    def _step(self, ctx, experiment, run, tag, datum, with_data=False):
        """A step's checked header and statistics, and with `with_data` its data blob.

        Header and statistics are small and never change while the step's wall time stays
        the same, so they are remembered (up to _STEP_CACHE_BYTES): /stats reads them for
        every step, and /maps then needs only the data blob.

        Raises:
            errors.NotFoundError: If the step cannot be read or decoded.
        """
        key = (experiment, run, tag, datum.step, datum.wall_time)
        with self._lock:
            meta = self._step_cache.get(key)
            if meta is not None:
                self._step_cache.move_to_end(key)
        try:
            if meta is not None:
                data_blob = self._read_blobs(ctx, datum, 3, start=2)[0] if with_data else None
                return meta, data_blob
            blobs = self._read_blobs(ctx, datum, 3 if with_data else 2, parallel=with_data)
            step = _series.decode_step(datum.step, blobs[:2])
        except _series.StepError as error:
            # Remembered for /tags' `skipped` when its header or statistics are at fault; a
            # step with those but no data blob still counts for /stats.
            if meta is None and not (with_data and len(datum.values) == 2):
                self._step_failed(experiment, run, tag, datum, error)
            raise errors.NotFoundError(str(error))
        # The header as checked (only known fields), re-encoded: it is what /maps sends.
        meta = _StepMeta(step.header, step.stats, payload.encode_header(step.header), blobs[1])
        if meta.nbytes > _CACHED_STEP_BYTES:
            return meta, (blobs[2] if with_data else None)
        with self._lock:
            self._step_cache[key] = meta
            self._step_cache_bytes += meta.nbytes
            while self._step_cache_bytes > _STEP_CACHE_BYTES:
                self._step_cache_bytes -= self._step_cache.popitem(last=False)[1].nbytes
        return meta, (blobs[2] if with_data else None)

    def _step_failed(self, experiment, run, tag, datum, error: _series.StepError) -> None:
        """Remember an unreadable step (for `skipped` in /tags) and warn once per layer."""
        with self._lock:
            layer = self._bad_steps.setdefault((experiment, run, tag), {})
            self._bad_steps.move_to_end((experiment, run, tag))
            layer[datum.step] = datum.wall_time
            while len(self._bad_steps) > _BAD_LAYERS:
                self._bad_steps.popitem(last=False)
        if error.newer:
            self._warn_once(
                ("newer", run, tag), "skipping steps of %r/%r of a newer format: %s", run, tag,
                error,
            )
        else:
            self._warn_once(("step", run, tag), "skipping unreadable steps of %r/%r, first %s",
                            run, tag, error)

    def _bad(self, experiment, run, tag) -> list:
        """The steps of a layer found unreadable whose data has not changed since."""
        with self._lock:
            bad = dict(self._bad_steps.get((experiment, run, tag), {}))
            series = self._series_cache.get((experiment, run, tag), {})
        return [s for s, wall in bad.items() if s in series and series[s].wall_time == wall]

    def _series_ok(self, run, tag, content) -> bool:
        try:
            _series.check_series(content)
        except _series.SeriesSkipped as e:
            key = ("newer",) if e.newer else (run, tag, "metadata")
            self._warn_once(key, "skipping %r/%r (and any other series like it): %s", run, tag, e)
            return False
        return True

    def _warn_once(self, key, message, *args):
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)


def _static_files():
    """The frontend's files, each at its own fixed route: {name: (bytes, content type)}.

    Installed, they are the package ``tb_featmap.frontend``. Where the package is imported
    from a source checkout instead (on ``PYTHONPATH``, or a legacy ``setup.py develop``),
    they are the checkout's ``frontend/`` beside ``tb_featmap/``.
    """
    try:
        root = resources.files("tb_featmap.frontend")
    except ModuleNotFoundError:
        root = resources.files("tb_featmap").joinpath("..", "frontend")
        if not root.joinpath("index.js").is_file():
            raise ModuleNotFoundError(
                "tb_featmap's frontend is missing: no package tb_featmap.frontend and no "
                f"{root} beside tb_featmap/; reinstall tb_featmap"
            ) from None
    result = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in _CONTENT_TYPES:
            result[entry.name] = (entry.read_bytes(), _CONTENT_TYPES[suffix])
    return result


def _context(request):
    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)


def _layer_args(request):
    """(context, experiment id, run, tag) of a request about one layer (or scalar tag)."""
    ctx, experiment = _context(request)
    return ctx, experiment, _string_arg(request, "run"), _string_arg(request, "tag")


def _sample_arg(request) -> int:
    """The optional `sample` argument: which sample of the stored batch (default 0)."""
    return _int_arg(request, "sample", required=False) or 0


def _string_arg(request, name: str, required: bool = True) -> Optional[str]:
    values = request.args.getlist(name)
    if not values:
        if required:
            raise errors.InvalidArgumentError(f"missing argument: {name}")
        return None
    if len(values) > 1:
        raise errors.InvalidArgumentError(f"argument given more than once: {name}")
    value = values[0]
    if len(value) > metadata.MAX_NAME_LENGTH:
        raise errors.InvalidArgumentError(f"argument too long: {name}")
    return value


def _int_arg(request, name: str, required: bool = True, signed: bool = False) -> Optional[int]:
    value = _string_arg(request, name, required)
    if value is None:
        return None
    digits = value[1:] if signed and value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        kind = "an integer" if signed else "a non-negative integer"
        raise errors.InvalidArgumentError(f"{name} must be {kind}")
    return int(value)


def _float_arg(request, name: str, required: bool = True) -> Optional[float]:
    value = _string_arg(request, name, required)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise errors.InvalidArgumentError(f"{name} must be a finite number")
    return number


def _json_arrays(fields: dict) -> bytes:
    """JSON of a dict of numbers and numpy arrays, written as `http_util.Respond` writes
    lists of floats (NaN and infinities as the strings "NaN", "Infinity", "-Infinity") but
    without building a Python list, and TensorBoard's cleansed copy of it, for each array:
    /stats of a 65,536-channel layer stays a few MiB."""
    parts = []
    for key, value in fields.items():
        if isinstance(value, np.ndarray) and value.dtype == bool:
            text = ",".join(np.where(value, "true", "false").tolist())
        elif isinstance(value, np.ndarray) and value.dtype.kind in "iu":
            text = ",".join(map(str, value.tolist()))
        elif isinstance(value, np.ndarray):
            text = ",".join(map(_json_float, value.tolist()))
        else:
            parts.append(f'"{key}":{int(value)}')
            continue
        parts.append(f'"{key}":[{text}]')
    return ("{" + ",".join(parts) + "}").encode("ascii")


def _json_float(value: float) -> str:
    if math.isfinite(value):
        return repr(value)
    return '"NaN"' if value != value else ('"Infinity"' if value > 0 else '"-Infinity"')


def _no_steps(sample: int, samples: int) -> str:
    """Why a layer gave no statistics: the sample is not stored, or no step is readable."""
    if samples:
        return f"sample {sample} not stored; this layer has {samples}"
    return "no readable steps"


def _quote(name: str) -> str:
    return repr(name if len(name) <= 100 else name[:100] + "...")


class _StepMeta:
    """A step's decoded header and statistics, with the blobs they came from."""

    __slots__ = ("header", "stats", "header_blob", "stats_blob")

    def __init__(self, header: dict, stats: np.ndarray, header_blob: bytes, stats_blob: bytes):
        self.header, self.stats = header, stats
        self.header_blob, self.stats_blob = header_blob, stats_blob

    @property
    def nbytes(self) -> int:
        return 2 * len(self.header_blob) + len(self.stats_blob)  # stats is a view of its blob

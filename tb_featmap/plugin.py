"""The TensorBoard side: routes of the Feature Maps plugin, and its loader.

Imports no torch. Reads only through ``context.data_provider``, so both of TensorBoard's
loaders work: the Rust data server (the default) and ``--load_fast=false``. Routes and their
JSON are documented in ``http_api.md`` beside this file.
"""

import collections
import concurrent.futures
import io
import logging
import math
import threading
import warnings
from importlib import resources
from typing import Dict, Optional

import numpy as np
from werkzeug import wrappers

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin

from tb_featmap import _crc, metadata, payload

__all__ = ["FeatureMapsLoader", "FeatureMapsPlugin", "DEFAULT_SAMPLES"]

logger = logging.getLogger(__name__)

# Steps kept per layer when the user passes no --samples_per_plugin for this plugin. Enough
# to scrub every logged step of an ordinary run; TensorBoard holds them in memory, so a run
# costs about DEFAULT_SAMPLES x (bytes per step of a layer) per layer. `0` keeps all.
DEFAULT_SAMPLES = 1000
_ALL = 2**31 - 1  # what `0` ("keep all") means when asking the data provider
_MAX_ARG_LENGTH = 4096
_CACHED_SERIES = 64
_STEP_CACHE_BYTES = 64 << 20
_HEADER_TRIES = 16  # steps _tag_info tries, newest first, for a readable header
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
    """Serves feature-map summaries to the Feature Maps tab."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        self._data_provider = context.data_provider
        hint = (context.sampling_hints or {}).get(self.plugin_name, DEFAULT_SAMPLES)
        self._samples = hint
        self._downsample = hint or _ALL
        self._series_cache: "collections.OrderedDict" = collections.OrderedDict()
        self._step_cache: "collections.OrderedDict" = collections.OrderedDict()
        self._step_cache_bytes = 0
        self._tag_cache: Dict[tuple, tuple] = {}
        # Two pools, so that a long /stats never queues ahead of the blobs of a /maps.
        self._pool = concurrent.futures.ThreadPoolExecutor(12, thread_name_prefix="feature_maps_blobs")
        self._stats_pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="feature_maps_stats")
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
        body, content_type = self._static[name]
        return http_util.Respond(request, body, content_type)

    @wrappers.Request.application
    def _serve_tags(self, request):
        ctx, experiment = _context(request)
        return http_util.Respond(request, self._tags_impl(ctx, experiment), "application/json")

    @wrappers.Request.application
    def _serve_steps(self, request):
        ctx, experiment = _context(request)
        run, tag = _string_arg(request, "run"), _string_arg(request, "tag")
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
        ctx, experiment = _context(request)
        run, tag = _string_arg(request, "run"), _string_arg(request, "tag")
        sample = _int_arg(request, "sample", required=False) or 0
        body = self._stats_impl(ctx, experiment, run, tag, sample)
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
        ctx, experiment = _context(request)
        run, tag = _string_arg(request, "run"), _string_arg(request, "tag")
        step = _int_arg(request, "step")
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
        result = {}
        for run, tags in mapping.items():
            for tag, series_meta in tags.items():
                if not self._version_ok(run, tag, series_meta.plugin_content):
                    continue
                # Re-describe a layer only when TensorBoard has loaded something new for it.
                version = (series_meta.max_step, series_meta.max_wall_time)
                cached = self._tag_cache.get((experiment, run, tag))
                if cached is not None and cached[0] == version:
                    info = cached[1]
                else:
                    info = self._tag_info(ctx, experiment, run, tag)
                    self._tag_cache[(experiment, run, tag)] = (version, info)
                if info is not None:
                    result.setdefault(run, {})[tag] = info
        return result

    def _tag_info(self, ctx, experiment, run, tag) -> Optional[dict]:
        series = self._read_series(ctx, experiment, run, tag)
        if not series:
            return None
        last_step = max(series)
        # The newest step that decodes describes the layer: one damaged step (say, of a
        # newer version) does not hide the others. Bounded, so that a wholly unreadable
        # series costs a few blob reads, not thousands.
        newest_first = sorted(series, reverse=True)[:_HEADER_TRIES]
        header = next(
            (h for h in (self._header(ctx, run, tag, series[s]) for s in newest_first) if h),
            None,
        )
        if header is None:
            return None
        return {
            "layer": metadata.layer_name(tag),
            "layout": header.get("layout"),
            "shape": header.get("shape"),
            "stored": header["stored"],
            "dtype": header.get("dtype"),
            "encoding": header["encoding"],
            "downsample": header.get("downsample", 1),
            "dropped": header.get("dropped", {}),
            "steps": len(series),
            "logged": max(len(series), int(header.get("seq", 0)) + 1),
            "maxStep": last_step,
            "samplesFlag": f"--samples_per_plugin={self.plugin_name}=0",
        }

    def _stats_impl(self, ctx, experiment, run, tag, sample) -> dict:
        series = self._read_series(ctx, experiment, run, tag)
        per_step = []
        samples = 0
        def step_stats(datum):
            return self._step_stats(ctx, experiment, run, tag, datum)

        for stats in self._stats_pool.map(step_stats, series.values()):
            if stats is None:
                continue
            samples = max(samples, stats.shape[0])
            if sample >= stats.shape[0]:
                continue  # a step logged with fewer samples (max_samples changed on a restart)
            if per_step and stats.shape[1] != per_step[0].shape[0]:
                continue  # the channel count changed (a new run under an old name)
            per_step.append(stats[sample])
        if not per_step:
            if samples:
                raise errors.NotFoundError(f"sample {sample} not stored; this layer has {samples}")
            raise errors.NotFoundError("no readable steps")
        stacked = np.stack(per_step).astype(np.float64)  # [steps, C, fields]
        field = {name: stacked[:, :, i] for i, name in enumerate(payload.STAT_FIELDS)}
        # np.nanmin and friends warn on all-NaN columns, which are expected here.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {
                "steps": len(per_step),
                "channels": stacked.shape[1],
                "min": _json_floats(np.nanmin(field["min"], axis=0)),
                "max": _json_floats(np.nanmax(field["max"], axis=0)),
                "mean": _json_floats(np.nanmean(field["mean"], axis=0)),
                "std": _json_floats(np.sqrt(np.nanmean(field["std"] ** 2, axis=0))),
                "zero_fraction": _json_floats(field["zero_fraction"].mean(axis=0)),
                "nonfinite": [int(v) for v in field["nonfinite"].sum(axis=0)],
                "dead": [bool(v) for v in (field["zero_fraction"] == 1).all(axis=0)],
            }

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
        Not for use inside a pool task."""
        if len(datum.values) < count:
            raise errors.NotFoundError(f"step {datum.step} has {len(datum.values)} blobs, expected 3")

        def read(ref):
            return self._data_provider.read_blob(ctx, blob_key=ref.blob_key)

        try:
            if parallel:
                return list(self._pool.map(read, datum.values[start:count]))
            return [read(ref) for ref in datum.values[start:count]]
        except (IndexError, TypeError, ValueError) as e:
            # The Python data provider fails this way on a tensor that is not a 1-D string
            # tensor, which any tool can write under this plugin's name.
            raise errors.NotFoundError(f"step {datum.step} cannot be read: {type(e).__name__}")
        except errors.InvalidArgumentError:
            # TensorBoard's Rust data server cannot parse its own blob keys when the run or
            # tag name holds a character that JSON escapes (a quote, a backslash, a control
            # character). The Python loader can.
            raise errors.NotFoundError(
                f"step {datum.step} cannot be read: the data server rejects this run or tag "
                "name (a quote, backslash or control character); use --load_fast=false"
            )

    def _step_stats(self, ctx, experiment, run, tag, datum) -> Optional[np.ndarray]:
        """One step's statistics, or None (warned once) if the step cannot be read."""
        try:
            return self._step(ctx, experiment, run, tag, datum)[0].stats
        except errors.NotFoundError as e:
            self._warn_once((run, tag, "stats"), "skipping unreadable step of %r/%r: %s", run, tag, e)
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
        if meta is not None:
            data_blob = self._read_blobs(ctx, datum, 3, start=2)[0] if with_data else None
            return meta, data_blob
        blobs = self._read_blobs(ctx, datum, 3 if with_data else 2, parallel=with_data)
        try:
            header = payload.decode_header(blobs[0])
            meta = _StepMeta(header, payload.decode_stats(header, blobs[1]), blobs[0], blobs[1])
        except payload.PayloadError as e:
            raise errors.NotFoundError(f"step {datum.step} cannot be read: {e}")
        with self._lock:
            self._step_cache[key] = meta
            self._step_cache_bytes += meta.nbytes
            while self._step_cache_bytes > _STEP_CACHE_BYTES:
                self._step_cache_bytes -= self._step_cache.popitem(last=False)[1].nbytes
        return meta, (blobs[2] if with_data else None)

    def _header(self, ctx, run, tag, datum) -> Optional[dict]:
        try:
            (blob,) = self._read_blobs(ctx, datum, 1)
            return payload.decode_header(blob)
        except (payload.PayloadError, errors.NotFoundError) as e:
            self._warn_once((run, tag, "header"), "skipping %r/%r: %s", run, tag, e)
            return None

    def _version_ok(self, run, tag, content) -> bool:
        try:
            version = metadata.parse_plugin_metadata(content).version
        except ValueError as e:
            self._warn_once((run, tag, "metadata"), "skipping %r/%r: %s", run, tag, e)
            return False
        if version > metadata.PROTOCOL_VERSION:
            self._warn_once(
                ("version", version),
                "skipping feature maps of format version %d (this reader knows up to %d); "
                "upgrade tb_featmap",
                version,
                metadata.PROTOCOL_VERSION,
            )
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


def _string_arg(request, name: str, required: bool = True) -> Optional[str]:
    values = request.args.getlist(name)
    if not values:
        if required:
            raise errors.InvalidArgumentError(f"missing argument: {name}")
        return None
    if len(values) > 1:
        raise errors.InvalidArgumentError(f"argument given more than once: {name}")
    value = values[0]
    if len(value) > _MAX_ARG_LENGTH:
        raise errors.InvalidArgumentError(f"argument too long: {name}")
    return value


def _int_arg(request, name: str, required: bool = True) -> Optional[int]:
    value = _string_arg(request, name, required)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise errors.InvalidArgumentError(f"{name} must be a non-negative integer")
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


def _quote(name: str) -> str:
    return repr(name if len(name) <= 100 else name[:100] + "...")


def _json_floats(values: np.ndarray):
    # http_util.Respond writes NaN as "NaN" safely; plain floats keep the JSON small.
    return [float(v) for v in values]


class _StepMeta:
    """A step's decoded header and statistics, with the blobs they came from."""

    __slots__ = ("header", "stats", "header_blob", "stats_blob")

    def __init__(self, header: dict, stats: np.ndarray, header_blob: bytes, stats_blob: bytes):
        self.header, self.stats = header, stats
        self.header_blob, self.stats_blob = header_blob, stats_blob

    @property
    def nbytes(self) -> int:
        return len(self.header_blob) + len(self.stats_blob) + self.stats.nbytes

"""The one place that touches the SummaryWriter internals tb_featmap needs.

``torch.utils.tensorboard.SummaryWriter`` and ``tensorboardX.SummaryWriter`` have no public
method to add a ready-made ``Summary`` proto, so this module uses their (long-stable)
``_get_file_writer()``, ``all_writers`` and, for tensorboardX, its writer thread
(``event_writer._worker``). ``tests/test_writers_contract.py`` fails loudly if any changes.
"""

import functools
import os
import weakref

from tensorboard.compat.proto import summary_pb2

from tb_featmap import _crc, _fs

__all__ = ["EventSink", "sink_for"]


class EventSink:
    """Where one ``log_feature_maps`` call writes: a writer and its proto flavour."""

    def __init__(self, writer, convert):
        self.writer = writer
        self._convert = convert

    def closed(self) -> bool:
        # Both writers set `all_writers` to None in close(); `_get_file_writer()` would
        # silently open a new event file instead of failing.
        return getattr(self.writer, "all_writers", None) is None

    def logdir(self) -> str:
        return self.writer._get_file_writer().get_logdir()

    def logdir_exists(self) -> bool:
        # An event file whose directory was removed still accepts writes on POSIX; they
        # are lost. Check before writing instead. Object stores have no directory to
        # remove (the writer uploads the whole file again); their failures raise.
        logdir = self.logdir()
        return _fs.is_remote(logdir) or os.path.isdir(logdir)

    def add_summary(self, summary: summary_pb2.Summary, step: int, walltime) -> None:
        file_writer = self.writer._get_file_writer()
        # tensorboardX's background thread dies silently on a write error (a full disk);
        # its queue then fills up and the next put() blocks training forever.
        worker = getattr(getattr(file_writer, "event_writer", None), "_worker", None)
        if worker is not None and not worker.is_alive():
            raise OSError("the writer's background thread has stopped after a write error")
        with _fs.as_os_error():  # a remote write failure (botocore's) is an OSError here
            file_writer.add_summary(self._convert(summary), step, walltime)

    def child(self, name: str) -> "EventSink":
        """A writer of the same kind for the run ``<logdir>/<name>``, made once."""
        children = _CHILDREN.setdefault(self.writer, {})
        if name not in children:
            children[name] = type(self.writer)(_fs.join(self.logdir(), name))
        return EventSink(children[name], self._convert)

    def flush(self) -> None:
        with _fs.as_os_error():
            self.writer.flush()


# Writers that log_feature_maps(all_ranks=True) opened, per user writer. They close when
# the user's writer is garbage-collected.
_CHILDREN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _same(summary):
    return summary


@functools.lru_cache(maxsize=None)
def _tensorboardx_classes():
    try:
        import tensorboardX
        from tensorboardX.proto import summary_pb2 as tbx_summary_pb2
    except ImportError:
        return None, None
    return tensorboardX.SummaryWriter, tbx_summary_pb2


def _to_tensorboardx(summary):
    # tensorboardX ships older protos without `data_class`. Parsing TensorBoard's bytes
    # keeps the field as an unknown field, and it is written back out unchanged.
    return _tensorboardx_classes()[1].Summary.FromString(summary.SerializeToString())


def sink_for(writer) -> EventSink:
    """An ``EventSink`` for a torch or tensorboardX ``SummaryWriter``.

    Raises:
        TypeError: If ``writer`` is neither.
    """
    from torch.utils.tensorboard import SummaryWriter

    if isinstance(writer, SummaryWriter):
        _crc.install_for_writer()
        return EventSink(writer, _same)
    tbx_writer, _ = _tensorboardx_classes()
    if tbx_writer is not None and isinstance(writer, tbx_writer):
        return EventSink(writer, _to_tensorboardx)
    raise TypeError(
        "writer must be a torch.utils.tensorboard.SummaryWriter or a "
        f"tensorboardX.SummaryWriter, got {type(writer).__module__}.{type(writer).__qualname__}"
    )

"""The one place that touches the SummaryWriter internals tb_featmap needs.

``torch.utils.tensorboard.SummaryWriter`` and ``tensorboardX.SummaryWriter`` have no public
method to add a ready-made ``Summary`` proto, so this module uses their (long-stable)
``_get_file_writer()``, ``all_writers`` and, for tensorboardX, its event writer's queue,
thread and closed flag (``event_writer._event_queue``, ``_worker``, ``_closed``).
``tests/test_writers_contract.py`` fails loudly if any changes.

Never blocking on a dead writer. TensorBoard's own writer (torch's) stores its thread's
error, drains its queue when the thread dies and raises the error at the next write, so a
write never waits on a dead thread. tensorboardX's thread dies silently on a write error (a
full disk), and its queue, a ``multiprocessing.Queue`` of 10 events, is never read again:
its ``put`` would block training forever once full, and so would interpreter exit (its
``close()`` puts a stop signal; multiprocessing joins the queue's feeder thread, stuck on a
full pipe). So for tensorboardX this module puts each event itself, waiting for room at most
``_POLL_S`` at a time and checking the thread between waits, and on finding it dead marks
that event writer closed (later ``add_*`` calls and ``close()`` then do nothing) and lets
exit go without joining the feeder. The events still queued are lost, as they would be.
"""

import atexit
import functools
import os
import queue
import time
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
        """Queue one event; raises ``OSError`` if the writer's thread has died."""
        file_writer = self.writer._get_file_writer()
        if self._convert is _same:
            # TensorBoard's writer raises its thread's error here and never blocks on it.
            with _fs.as_os_error():  # a remote write failure (botocore's) is an OSError here
                file_writer.add_summary(summary, step, walltime)
            return
        _, _, tbx_event_pb2 = _tensorboardx_classes()
        event = tbx_event_pb2.Event(
            summary=self._convert(summary),
            step=step,
            wall_time=time.time() if walltime is None else walltime,
        )
        with _fs.as_os_error():
            _put_tensorboardx_event(file_writer.event_writer, event)

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


# How long one wait for room in tensorboardX's queue lasts before the thread is checked again.
_POLL_S = 0.05
_TENSORBOARDX_EVENT_WRITERS: "weakref.WeakSet" = weakref.WeakSet()


def _put_tensorboardx_event(event_writer, event) -> None:
    """Put ``event`` on a tensorboardX event writer's queue without ever blocking on a dead
    thread: what ``EventFileWriter.add_event`` does, but with bounded waits."""
    _watch_at_exit(event_writer)
    while True:
        if _release_if_dead(event_writer):
            raise OSError("the writer's background thread has stopped after a write error")
        try:
            event_writer._event_queue.put(event, timeout=_POLL_S)
            return
        except queue.Full:  # the thread is busy (a slow disk) or dead: check again
            pass


def _release_if_dead(event_writer) -> bool:
    """If the event writer's thread has died, mark the writer closed and let the process
    exit without waiting on its queue. Returns whether it had died."""
    if event_writer._closed:
        return True
    if event_writer._worker.is_alive():
        return False
    event_writer._closed = True  # add_event() and close() do nothing from now on
    return True


def _watch_at_exit(event_writer) -> None:
    """Make interpreter exit safe for this writer.

    multiprocessing joins the queue's feeder thread at exit, after tensorboardX's own exit
    hook has closed the writer; by then a live thread has received every event, and a dead
    one never will, so the join is never needed and is cancelled. Our exit hook runs before
    tensorboardX's (registered earlier, so run later): it lets a live thread take what is
    queued, so that ``close()`` finds room for its stop signal, or finds the thread dead.
    """
    if event_writer not in _TENSORBOARDX_EVENT_WRITERS:
        event_writer._event_queue.cancel_join_thread()
        _register_exit_hook()
        _TENSORBOARDX_EVENT_WRITERS.add(event_writer)


@functools.lru_cache(maxsize=None)
def _register_exit_hook() -> None:
    atexit.register(_release_dead_writers)


def _release_dead_writers() -> None:
    for event_writer in list(_TENSORBOARDX_EVENT_WRITERS):
        while not _release_if_dead(event_writer) and _queued(event_writer._event_queue):
            time.sleep(_POLL_S)  # a live thread is taking the queued events


def _queued(pending) -> bool:
    """Whether events are still queued (put, not yet taken by the thread)."""
    try:
        return pending.qsize() > 0
    except NotImplementedError:  # macOS: no semaphore count; the pipe at least
        return not pending.empty()


@functools.lru_cache(maxsize=None)
def _tensorboardx_classes():
    try:
        import tensorboardX
        from tensorboardX.proto import event_pb2 as tbx_event_pb2
        from tensorboardX.proto import summary_pb2 as tbx_summary_pb2
    except ImportError:
        return None, None, None
    return tensorboardX.SummaryWriter, tbx_summary_pb2, tbx_event_pb2


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
    tbx_writer = _tensorboardx_classes()[0]
    if tbx_writer is not None and isinstance(writer, tbx_writer):
        return EventSink(writer, _to_tensorboardx)
    raise TypeError(
        "writer must be a torch.utils.tensorboard.SummaryWriter or a "
        f"tensorboardX.SummaryWriter, got {type(writer).__module__}.{type(writer).__qualname__}"
    )

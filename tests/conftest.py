"""Shared fixtures. The helpers behind them live in support.py."""

import pytest

from support import TensorBoardProcess


@pytest.fixture
def tensorboard_process():
    """Factory: tensorboard_process(logdir, *flags) -> TensorBoardProcess; all stopped after."""
    started = []

    def start(logdir, *args, **kwargs):
        tb = TensorBoardProcess(logdir, *args, **kwargs)
        started.append(tb)
        return tb

    yield start
    for tb in started:
        tb.stop()

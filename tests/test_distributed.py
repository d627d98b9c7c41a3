"""torch.distributed: two gloo processes on CPU, each calling log_feature_maps.

By default only rank 0 writes, whichever of the two usual patterns the script uses (a
SummaryWriter on every rank, a common mistake, or on rank 0 only, the recommended one); with
``all_ranks=True`` each rank writes its own run ``<logdir>/rank<r>``. Read back from the
event files: every step of every layer exactly once, with the data of the rank that wrote it.
"""

import collections
import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing import event_file_loader

from support import free_port, wsgi_client

STEPS = list(range(5))
LAYERS = ("conv", "fc")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from torch.utils.tensorboard import SummaryWriter
    from tb_featmap import log_feature_maps

    def outputs(rank, step):
        g = torch.Generator().manual_seed(1000 * rank + step)
        return {"conv": torch.randn(2, 4, 8, 8, generator=g), "fc": torch.randn(2, 6, generator=g)}

    def worker(rank, logdir, pattern, port):
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
        writer = SummaryWriter(logdir) if pattern != "rank0_writer" or rank == 0 else None
        returned = []
        for step in range(5):
            dist.barrier()  # both ranks log the same step at the same time
            if writer is not None:
                result = log_feature_maps(writer, outputs(rank, step), step, all_ranks=pattern == "all_ranks")
                returned.append({tag: list(shape) for tag, shape in result.items()})
        dist.barrier()
        if writer is not None:
            writer.close()
        with open(f"{logdir}/returned{rank}.json", "w") as f:
            json.dump(returned, f)
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.spawn(worker, args=(sys.argv[1], sys.argv[2], int(sys.argv[3])), nprocs=2, join=True)
    """
)


def outputs(rank, step):
    generator = torch.Generator().manual_seed(1000 * rank + step)
    return {"conv": torch.randn(2, 4, 8, 8, generator=generator), "fc": torch.randn(2, 6, generator=generator)}


def run_job(tmp_path, pattern):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(logdir), pattern, str(free_port())],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    returned = {
        rank: json.loads((logdir / f"returned{rank}.json").read_text()) for rank in (0, 1)
    }
    return logdir, returned, done.stderr


def events_per_step(run_dir):
    """Counter of (tag, step) over every feature-map event in run_dir's own event files."""
    counts = collections.Counter()
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                counts[(value.tag, event.step)] += 1
    return counts


def check_run(client, run, rank):
    """The run has every step once, holding rank's data."""
    tags = client.get("/data/plugin/feature_maps/tags").get_json()
    assert sorted(tags[run]) == [f"feature_maps/{name}" for name in LAYERS]
    for step in STEPS:
        response = client.get(
            "/data/plugin/feature_maps/npy",
            query_string={"run": run, "tag": "feature_maps/conv", "step": step},
        )
        assert response.status_code == 200
        got = np.load(io.BytesIO(response.get_data()))
        want = outputs(rank, step)["conv"][:1].numpy()
        assert np.abs(got - want).max() <= (want.max() - want.min()) / 500, (run, rank, step)


EXPECTED_ONCE = {(f"feature_maps/{name}", step): 1 for name in LAYERS for step in STEPS}


@pytest.mark.parametrize("pattern", ["every_rank_writer", "rank0_writer"])
def test_only_rank_0_writes_by_default(tmp_path, pattern):
    logdir, returned, stderr = run_job(tmp_path, pattern)
    assert all(r == {"feature_maps/conv": [1, 4, 8, 8], "feature_maps/fc": [1, 6, 1, 1]} for r in returned[0])
    if pattern == "every_rank_writer":
        assert returned[1] == [{}] * len(STEPS)  # rank 1 checked its arguments, wrote nothing
    else:
        assert returned[1] == []
    assert dict(events_per_step(logdir)) == EXPECTED_ONCE  # no duplicates, nothing missing
    assert not [p for p in logdir.iterdir() if p.is_dir()]  # no per-rank runs
    client = wsgi_client(logdir)
    assert list(client.get("/data/plugin/feature_maps/tags").get_json()) == ["."]
    check_run(client, ".", rank=0)
    assert "Traceback" not in stderr


def test_all_ranks_gives_each_rank_its_own_run(tmp_path):
    logdir, returned, stderr = run_job(tmp_path, "all_ranks")
    for rank in (0, 1):
        assert len(returned[rank]) == len(STEPS) and all(returned[rank])
        assert dict(events_per_step(logdir / f"rank{rank}")) == EXPECTED_ONCE
    assert not events_per_step(logdir)  # the shared run itself got no feature maps
    client = wsgi_client(logdir)
    assert sorted(client.get("/data/plugin/feature_maps/tags").get_json()) == ["rank0", "rank1"]
    check_run(client, "rank0", rank=0)
    check_run(client, "rank1", rank=1)
    assert "Traceback" not in stderr

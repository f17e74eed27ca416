"""Sharded batches: ``torchrun -m sclle enhance`` on 2 CPU processes (gloo) writes each output once, resumes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sclle.enhancement.shard import Shard
from sclle.errors import SclleError

NAMES = ["1", "2", "3", "4", "5", "6", "10"]


def test_shards_partition_the_natural_order():
    jobs = [f"in/{n}.png" for n in ["10", "2", "1", "3", "22", "4", "5"]]
    parts = [Shard(r, 3).select(jobs) for r in range(3)]
    assert parts[0] == ["in/1.png", "in/4.png", "in/22.png"]  # natural order: 1 2 3 4 5 10 22
    assert parts[1] == ["in/2.png", "in/5.png"] and parts[2] == ["in/3.png", "in/10.png"]
    assert sorted(sum(parts, [])) == sorted(jobs)
    assert Shard().select(jobs) == sorted(jobs, key=lambda s: int(s[3:-4]))


def test_shard_from_torchrun_environment():
    assert Shard.from_env({}) == Shard(0, 1, 0) and not Shard.from_env({}).distributed
    s = Shard.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (s.rank, s.world_size, s.local_rank, s.main, s.distributed) == (3, 4, 1, False, True)
    assert Shard(0, 1).device("cpu") == "cpu"
    with pytest.raises(SclleError, match="RANK=4, WORLD_SIZE=4"):
        Shard.from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(SclleError, match="integers"):
        Shard.from_env({"RANK": "x"})


def _torchrun(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "sclle", "enhance", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _lines(r, prefix):
    return [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith(prefix)]


@pytest.mark.slow
def test_two_ranks_write_each_output_once_and_resume(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, n in enumerate(NAMES):
        a = (np.random.default_rng(i).random((24, 32 + i, 3)) * 60).astype(np.uint8)
        Image.fromarray(a).save(src / f"{n}.png")
    (src / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    out.mkdir()
    # What a killed run leaves: two finished outputs, and a temporary file of an unfinished one.
    (out / "2.png").write_bytes(b"finished earlier")
    (out / "10.png").write_bytes(b"finished earlier")
    (out / ".5.png.dead.tmp").write_bytes(b"partial")

    r = _torchrun(src, "-o", out, "-q", cwd=tmp_path)
    assert r.returncode != 0  # bad.png failed (on whichever rank had it)
    done = _lines(r, "done:")
    assert done == [done[0]] and "5 enhanced, 2 skipped, 1 failed" in done[0], r.stdout + r.stderr
    assert len(_lines(r, "failed:")) == 1 and "bad.png" in _lines(r, "failed:")[0]
    assert "written meanwhile" not in r.stderr  # no two ranks raced for one output
    assert (out / "2.png").read_bytes() == b"finished earlier" == (out / "10.png").read_bytes()
    for i, n in enumerate(NAMES):
        if n not in ("2", "10"):
            with Image.open(out / f"{n}.png") as im:
                assert im.size == (32 + i, 24)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{n}.png" for n in NAMES] + [".5.png.dead.tmp"])  # no new temporary file

    (src / "bad.png").unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    r = _torchrun(src, "-o", out, "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(_lines(r, "done:")) == 1 and "0 enhanced, 7 skipped, 0 failed" in _lines(r, "done:")[0]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps  # nothing rewritten

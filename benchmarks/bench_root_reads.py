"""CPU-seconds (and wall) of the root read paths: RootInfo.read x200, ClipIndex.load, and a
derived run's open + source_rows + register + done_rows, on a root of ``scale_root.py``.

    python benchmarks/scale_root.py /tmp/kx/root --clips 100000 --split val
    PYTHONPATH=OTHER_TREE/src python benchmarks/bench_root_reads.py /tmp/kx/root /tmp/kx/out

Run it with PYTHONPATH on two trees, interleaved, to compare commits.
"""

import resource
import shutil
import sys
import time
from pathlib import Path

from kinetix.data.index import ClipIndex, RootInfo
from kinetix.process.derived import DerivedDataset


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


root, out = Path(sys.argv[1]), Path(sys.argv[2])
res = {}
t = cpu()
w = time.perf_counter()
for _ in range(200):
    RootInfo.read(root)
res["rootinfo x200"] = (cpu() - t, time.perf_counter() - w)
t = cpu()
w = time.perf_counter()
idx = ClipIndex.load(root, "val")
res["clipindex"] = (cpu() - t, time.perf_counter() - w)
shutil.rmtree(out, ignore_errors=True)
t = cpu()
w = time.perf_counter()
with DerivedDataset(root, out, kind="videos", settings={"x": 1}) as ds:
    rows = ds.source_rows()
    ds.register(rows)
    done = ds.done_rows()
res["derived open+rows"] = (cpu() - t, time.perf_counter() - w)
assert len(idx) == len(rows) == len(done), (len(idx), len(rows), len(done))
print(" ".join(f"{k}={c:.3f}/{wl:.3f}" for k, (c, wl) in res.items()))

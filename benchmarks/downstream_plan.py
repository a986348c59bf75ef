"""What `kinetix download countix|ava-kinetics` would fetch, per split, from the real files.

For each split whose files are in the shared metadata folder: annotation rows (rejected ones
too), rows resolving to a K700-2020 clip against CVDF's annotation file and against DeepMind's,
the distinct clips to fetch, their estimated bytes (CVDF's average clip size of that split), and
the CVDF shards the download reads: K700-2020 train/val shards hold one class each, so only the
classes of the needed clips (planned with kinetix's own ``shard_for_label`` on the real path
list); test shards mix classes, so all of them. A shard's bytes are estimated as its class's
clips in CVDF's file times the average clip size. Countix train is counted without resolution
(no K700-2020 train file is here): the clips it names and their classes.

    python benchmarks/downstream_plan.py [--data ../shared/data/kinetics] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from kinetix.catalog.downstream import CountixRow, read_downstream
from kinetix.catalog.parse import read_annotations
from kinetix.catalog.resolve import CVDF_BYTES_PER_CLIP, REASONS, resolve
from kinetix.sources.cvdf import NO_SHARD, read_path_list, shard_for_label

# set, split -> (its CSV, CVDF's K700-2020 file, DeepMind's, CVDF's path list)
SPLITS = {
    ("countix", "val"): (
        "countix/countix_val.csv", "k700_2020/val.csv", "k700_2020/kinetics-700_2020_val.csv",
        "k700_2020/k700_2020_val_path.txt",
    ),
    ("ava-kinetics", "test"): (
        "ava_kinetics/kinetics_test_v1.0.csv", "k700_2020/test.csv",
        "k700_2020/kinetics-700_2020_test.csv", "k700_2020/k700_2020_test_path.txt",
    ),
}  # fmt: skip


def plan(data: Path, release: str, split: str) -> dict[str, Any]:
    own, cvdf_file, deepmind_file, path_list = (data / p for p in SPLITS[(release, split)])
    rows = read_downstream(own, release, split)
    out: dict[str, Any] = {
        "set": release, "split": split, "rows": len(rows.rows) + len(rows.rejected),
        "rejected": len(rows.rejected), "keyframes": rows.keyframes,
    }  # fmt: skip
    per_clip = CVDF_BYTES_PER_CLIP[split]
    cvdf_keys: set[str] = set()
    for name, base in (("cvdf", cvdf_file), ("deepmind", deepmind_file)):
        clips = read_annotations(base, release="k700-2020", split=split)
        res = resolve(rows, clips)
        counts = res.counts()
        needed = res.needed()
        out[name] = {
            "resolving": counts["resolved"],
            "not_resolving": {r: counts[r] for r in REASONS if counts[r]},
            "clips": len(needed),
            "clip_bytes": round(len(needed) * per_clip),
        }
        if name == "deepmind":  # clips CVDF does not hold: YouTube's, with --source auto
            out[name]["not_on_cvdf"] = sum(c.key not in cvdf_keys for c in needed)
        cvdf_keys = {c.key for c in clips}
        if name == "cvdf":
            shards = read_path_list(path_list.read_text(), None, f"700_2020/{split}/x")
            labels = sorted({c.label for c in clips if c.label})
            shard_of = shard_for_label(shards, labels)
            by_label = Counter(c.label for c in clips)
            wanted = {shard_of(c.label) for c in needed}
            if None in wanted:  # class-mixed shards (test): every one
                read, shard_bytes = len(shards), per_clip * len(clips)
            else:
                wanted.discard(NO_SHARD)
                read = len(wanted)
                shard_bytes = per_clip * sum(by_label[c] for c in {c.label for c in needed})
            out[name] |= {
                "shards": read,
                "of_shards": len(shards),
                "shard_bytes": round(shard_bytes),
            }
    return out


def countix_train(data: Path) -> dict[str, Any]:
    rows = read_downstream(data / "countix/countix_train.csv", "countix", "train")
    countix = [r for r in rows.rows if isinstance(r, CountixRow)]
    clips = {(r.youtube_id, r.time_start, r.time_end) for r in countix}
    classes = {r.label for r in countix}
    return {
        "set": "countix", "split": "train", "rows": len(rows.rows) + len(rows.rejected),
        "rejected": len(rows.rejected), "clips_named": len(clips), "classes": len(classes),
        "clip_bytes_at_most": round(len(clips) * CVDF_BYTES_PER_CLIP["train"]),
    }  # fmt: skip


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _why(resolved: dict[str, Any]) -> str:
    return ", ".join(f"{n:,} `{k}`" for k, n in resolved["not_resolving"].items())


def main() -> int:
    default = os.environ.get("KINETIX_SHARED_DATA") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data" / "kinetics"
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(default))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no metadata folder at {args.data}; pass --data", file=sys.stderr)
        return 2
    results = [plan(args.data, *key) for key in SPLITS] + [countix_train(args.data)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("| set, split | rows | rejected | resolving (CVDF) | resolving (DeepMind) "
          "| clips to fetch (CVDF / DeepMind) | of DeepMind's, not on CVDF | est. clip bytes "
          "| CVDF shards read | est. shard bytes |")  # fmt: skip
    print("|---|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for r in results[:-1]:
        c, d = r["cvdf"], r["deepmind"]
        print(
            f"| {r['set']} {r['split']} | {r['rows']:,} | {r['rejected']} | "
            f"{c['resolving']:,} ({_why(c)}) | {d['resolving']:,} ({_why(d)}) | "
            f"{c['clips']:,} / {d['clips']:,} | {d['not_on_cvdf']:,} | {_gb(c['clip_bytes'])} | "
            f"{c['shards']} of {c['of_shards']} | {_gb(c['shard_bytes'])} |"
        )
    t = results[-1]
    print(
        f"\ncountix train: {t['rows']:,} rows, {t['rejected']} rejected, {t['clips_named']:,} "
        f"clips named in {t['classes']} classes (so at most {t['classes']} of 700 train shards), "
        f"at most {_gb(t['clip_bytes_at_most'])} of clips"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

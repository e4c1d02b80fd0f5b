"""Archive runs on this machine: scenes per minute of ``geofoundry predict --bundle`` over a folder of scenes in one
process against two ranks under ``torchrun`` (CPU, gloo, the host's cores shared between them), and the overhead of
the archive run's scene loop against predicting the same scenes one command each (a fresh process per scene, as a
shell loop would). One run of each; every command starts a fresh process, so imports and the bundle's verification
count in all of them.

    python bench/archive.py --scenes ../shared/data/oam_buildings_eafrica_scenes/images --pattern '*_z19.tif' \\
        --copies 2 --bundle tests/fixtures/bundle_v4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=Path, required=True, help="folder of scenes")
    parser.add_argument("--pattern", default="*.tif")
    parser.add_argument("--copies", type=int, default=1, help="each scene this many times, under other names")
    parser.add_argument("--bundle", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "scenes"
        folder.mkdir()
        for scene in sorted(args.scenes.glob(args.pattern)):
            for i in range(args.copies):
                shutil.copy(scene, folder / f"{scene.stem}_{i}{scene.suffix}")
        scenes = sorted(folder.iterdir())
        base = ["-m", "geofoundry", "predict", "--bundle", str(args.bundle)]
        one = timed([sys.executable, *base, str(folder), "--out", str(work / "one")])
        two = timed([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *base,
                     str(folder), "--out", str(work / "two")])
        each = sum(timed([sys.executable, *base, str(s), "--out", str(work / "each" / s.stem)]) for s in scenes)
    result = {"scenes": len(scenes), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "one_process_s": round(one, 1), "two_ranks_s": round(two, 1), "one_command_per_scene_s": round(each, 1),
              "scenes_per_min_one": round(60 * len(scenes) / one, 2),
              "scenes_per_min_two": round(60 * len(scenes) / two, 2),
              "loop_over_commands": round(one / each, 3)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

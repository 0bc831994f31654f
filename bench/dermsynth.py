"""Benchmark: generate the default DermSynth data set into a temporary folder.

Run ``python bench/dermsynth.py``; the last line is ``generation_seconds: <value>``.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from concepts.dermsynth import DermSynthConfig, generate_dermsynth


def main() -> None:
    """Generate the default set, print the counts and the wall time."""
    config = DermSynthConfig()
    last: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if done == total and last.get(stage) != done:
            last[stage] = done
            print(f"{stage}: {done}/{total} at {time.perf_counter() - t0:.1f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = generate_dermsynth(config, Path(tmp), progress)
        seconds = time.perf_counter() - t0
        print(f"main: {len(result.main)} images, concept sets: {len(result.concept_sets)} images, "
              f"{config.image_size} px")
    cpu = sum(
        r.ru_utime + r.ru_stime
        for r in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    print(f"cpu_seconds (this process and its workers, including imports): {cpu:.2f}")
    print(f"generation_seconds: {seconds:.2f}")


if __name__ == "__main__":
    main()

"""Cost of FolderSource's index check: first build (every file decoded) vs cached re-open.

    python tests/_measure_folder_index.py [NUM_FILES] [SECONDS]

Writes NUM_FILES (default 1000) 16-bit mono wavs of SECONDS (default 2) at 16 kHz into a
temporary folder (10 speakers x 2 sessions), then times ``FolderSource(root, 16000)`` three
ways: the first build, a re-open with the cache, and a re-open after one file changed.
Prints one line per measurement (seconds, and per 1,000 files). Not collected by pytest.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
import soundfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from csc_jax.data.sources import FolderSource  # noqa: E402

RATE = 16000


def main() -> None:
    num_files = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(num_files):
            path = os.path.join(tmp, f"spk{i % 10:02d}", f"sess{i % 2}", f"{i:06d}.wav")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            x = 0.1 * rng.standard_normal(int(seconds * RATE))
            soundfile.write(path, x.astype(np.float32), RATE, subtype="PCM_16")

        def timed(label: str) -> None:
            t0 = time.perf_counter()
            src = FolderSource(tmp, RATE)
            dt = time.perf_counter() - t0
            assert len(src) == num_files
            print(f"{label}: {dt:.3f} s ({dt * 1000 / num_files:.3f} s per 1,000 files)")

        timed("first build (decode every file)")
        timed("cached re-open (stat every file)")
        changed = os.path.join(tmp, "spk00", "sess0", f"{0:06d}.wav")
        stamp = os.stat(changed).st_mtime + 5
        os.utime(changed, (stamp, stamp))
        timed("re-open after 1 file changed")
    print(f"{num_files} files of {seconds} s at {RATE} Hz, 16-bit mono, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

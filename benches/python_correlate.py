"""The Python call's cost on the criterion bench's dense multi-tau case (benches/correlate.rs,
`dense_multitau_1000x512x512_u16`): 1000 frames × 512 × 512 u16, about 0.1 photon per pixel
per frame (counts 0..=3), ten ring q-bins, the default schedule (8 buffers per level), the
symmetric estimator.

    XPCS_TWIN_WHEEL_PROFILE=release scripts/test-python -k nothing   # release wheel into .venv
    .venv/bin/python benches/python_correlate.py [REPEATS]
    cargo bench --bench correlate -- dense_multitau --warm-up-time 1 --measurement-time 5

The stack has the bench's distribution (a byte b uniform in 0..=255 gives b & 3 when b < 24,
else 0) from numpy's generator instead of the bench's ChaCha stream: the correlator's work does
not depend on which photons, only on the shape and the occupancy. The time includes what a
Python caller pays beyond the bench's closure: the label map's conversion and the partition.
"""

import sys
import time

import numpy as np

import xpcs_twin


def rings(n: int) -> np.ndarray:
    """Ten rings of equal width around the centre; corners excluded (label 0)."""
    c = n / 2.0
    row, col = np.mgrid[0:n, 0:n]
    r = np.hypot(row + 0.5 - c, col + 0.5 - c) / c
    return np.where(r < 1.0, 1 + np.floor(r * 10.0), 0).astype(np.uint32)


def dense_stack(t: int, n: int, seed: int) -> np.ndarray:
    b = np.random.default_rng(seed).integers(0, 256, size=(t, n, n), dtype=np.uint8)
    return np.where(b < 24, b & 3, 0).astype(np.uint16)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    labels = rings(512)
    stack = dense_stack(1000, 512, 1)
    assert stack.flags.c_contiguous and stack.dtype == np.uint16
    print(f"stack {stack.shape} {stack.dtype}, mean {stack.mean():.4f} photons/pixel/frame")
    xpcs_twin.correlate.multitau(stack, labels, frame_time=0.1)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c = xpcs_twin.correlate.multitau(stack, labels, frame_time=0.1)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(
        f"xpcs_twin.correlate.multitau: best {times[0] * 1e3:.1f} ms, median "
        f"{times[len(times) // 2] * 1e3:.1f} ms over {repeats} calls ({c})"
    )


if __name__ == "__main__":
    main()

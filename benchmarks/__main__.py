"""Run the benchmarks: ``python -m benchmarks`` (or ``nox -s bench``).

Each comparison times the package and its reference side by side in one process,
with interleaved repetitions, and prints the medians and their ratio as a Markdown
table. Nothing here is asserted: timings depend on the machine.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from attention_from_scratch.softmax import softmax


def _interleaved(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median seconds of ``first`` and ``second``, run alternately ``repeats`` times."""
    first()
    second()  # warm up
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        first()
        a.append(time.perf_counter() - start)
        start = time.perf_counter()
        second()
        b.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def _import_seconds(statement: str, repeats: int = 7) -> float:
    """Median wall time of a fresh interpreter running ``statement``, minus a bare start."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print the benchmark table."""
    from scipy.special import softmax as scipy_softmax

    rng = np.random.default_rng(0)
    rows = ["| what | this package | reference | ratio |", "| --- | ---: | ---: | ---: |"]
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2048, 2048)).astype(dtype)

        def package(x: np.ndarray = x) -> object:
            return softmax(x)

        def reference(x: np.ndarray = x) -> object:
            return scipy_softmax(x, axis=-1)

        ours, ref = _interleaved(package, reference, repeats=15)
        rows.append(
            f"| softmax (2048, 2048) {np.dtype(dtype).name} vs scipy.special.softmax "
            f"| {ours * 1e3:.2f} ms | {ref * 1e3:.2f} ms | {ours / ref:.2f} |"
        )
    bare = _import_seconds("pass")
    ours_import = _import_seconds("import attention_from_scratch") - bare
    numpy_import = _import_seconds("import numpy") - bare
    rows.append(
        f"| import attention_from_scratch vs import numpy | {ours_import * 1e3:.0f} ms "
        f"| {numpy_import * 1e3:.0f} ms | {ours_import / numpy_import:.2f} |"
    )
    print(f"Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

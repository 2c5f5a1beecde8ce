"""Run the benchmarks: ``python -m benchmarks`` (or ``nox -s bench``).

Times the package against its references side by side, in one process, with
interleaved repetitions (bursts of calls, A B C A B C ...; see :func:`interleaved`),
and prints medians and ratios as a Markdown table, followed by where the time of
attention goes, the peak memory of dense and tiled attention and the machine the
numbers come from. The rows at the sizes of training (a batch of 32 sequences of 6
tokens, small calls timed in loops) are built in :mod:`benchmarks.training`. Nothing
is asserted: the "goal" column says what the project aims at, the "ratio" column what
this machine measured.

Options::

    python -m benchmarks                  # the full run (a few minutes on 2 cores)
    python -m benchmarks --quick          # fewer repetitions and sizes: a smoke test
    python -m benchmarks --threads 2      # BLAS and torch threads (default 2)
    python -m benchmarks --save docs/data/benchmarks.json   # the numbers the book plots
    python -m benchmarks --wait-quiet 300 # wait for idle CPUs before each benchmark

The reference for attention is ``torch.nn.functional.scaled_dot_product_attention``
on the CPU when torch is installed (its rows are skipped otherwise); numpy's BLAS
threads are set with threadpoolctl, torch's with ``torch.set_num_threads``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attention_from_scratch.self_attention import scaled_dot_product_attention, tiled_attention
from attention_from_scratch.softmax import softmax
from benchmarks.training import COMPARISONS, Comparison

MiB = 2**20


@dataclass
class Row:
    """One line of the table: our time, the reference's, their ratio and the goal."""

    what: str
    ours: float
    reference: float
    unit: str = "ms"
    goal: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.reference

    def markdown(self) -> str:
        scale = {"ms": 1e3, "us": 1e6}.get(self.unit, 1.0)
        return (
            f"| {self.what} | {self.ours * scale:.2f} {self.unit} "
            f"| {self.reference * scale:.2f} {self.unit} | {self.ratio:.2f} | {self.goal} |"
        )


@dataclass
class Report:
    """Everything one run measured, printed as Markdown and saved as JSON."""

    machine: dict[str, Any]
    threads: int = 2
    rows: list[Row] = field(default_factory=list)
    memory: dict[str, list[float]] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)
    breakdown: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            "| benchmark | this package | reference | ratio | goal |",
            "| --- | ---: | ---: | ---: | :--- |",
            *(row.markdown() for row in self.rows),
        ]
        if self.breakdown:
            total = self.breakdown[0][1]
            lines += ["", "| step of scaled_dot_product_attention | time | share |"]
            lines += ["| --- | ---: | ---: |"]
            lines += [
                f"| {what} | {seconds * 1e3:.2f} ms | {seconds / total:.0%} |"
                for what, seconds in self.breakdown
            ]
        if self.memory:
            lines += [
                "",
                "| n | dense peak (MiB) | tiled peak (MiB) | one n x n float32 matrix (MiB) |",
                "| ---: | ---: | ---: | ---: |",
            ]
            for n, dense, tiled in zip(
                self.memory["n"], self.memory["dense_mib"], self.memory["tiled_mib"], strict=True
            ):
                lines.append(f"| {n:.0f} | {dense:.1f} | {tiled:.1f} | {n * n * 4 / MiB:.1f} |")
        if self.accuracy:
            lines.append("")
            lines += [f"- {key}: {value:.3g}" for key, value in self.accuracy.items()]
        lines += ["", *(f"- {note}" for note in self.notes)]
        lines += ["", "Machine:", ""]
        lines += [f"- {key}: {value}" for key, value in self.machine.items()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "rows": [
                {
                    "what": r.what,
                    "ours_s": r.ours,
                    "reference_s": r.reference,
                    "ratio": r.ratio,
                    "goal": r.goal,
                }
                for r in self.rows
            ],
            "memory": self.memory,
            "accuracy": self.accuracy,
            "breakdown": self.breakdown,
            "notes": self.notes,
            "markdown": self.markdown(),
        }


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------


#: Timed calls in a row for one function, and the pause before each such burst.
BURST = 5
PAUSE_S = 0.2


def interleaved(functions: Sequence[Callable[[], object]], rounds: int) -> list[float]:
    """Median wall time in seconds of each function, timed in alternating bursts.

    Round after round, each function gets its turn (A B C A B C ...), so all of them
    see the same background load and the ratio of their medians stays meaningful. A
    turn is a pause, one untimed warm-up call and ``BURST`` timed calls. The pause lets
    the worker threads of the previous library go to sleep: OpenBLAS's spin for about
    0.1 s after a call and torch's OpenMP threads for a while too, and either would
    slow the other library down if it ran right after. Each library is thus timed as a
    loop of calls would see it. The garbage collector is off while timing.
    """
    times: list[list[float]] = [[] for _ in functions]
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for elapsed, function in zip(times, functions, strict=True):
                time.sleep(PAUSE_S)
                function()  # warm-up: wakes the threads, fills the caches
                for _ in range(BURST):
                    start = time.perf_counter()
                    function()
                    elapsed.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return [statistics.median(elapsed) for elapsed in times]


def peak_traced_bytes(function: Callable[[], object]) -> int:
    """Peak bytes allocated (numpy arrays included) while ``function`` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = function()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak


def busy_fraction(seconds: float = 1.0) -> float | None:
    """Fraction of the machine's CPU time spent by anyone over ``seconds`` (Linux only)."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return None

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in stat.read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_until_quiet(limit: float, timeout: float) -> str:
    """Wait (up to ``timeout`` seconds) until other processes use < ``limit`` of the CPUs.

    A multi-threaded BLAS slows down far more than torch when another process holds a
    core, so a comparison is only fair on a quiet machine. Returns what was seen.
    """
    deadline = time.monotonic() + timeout
    busy = busy_fraction()
    while busy is not None and busy > limit and time.monotonic() < deadline:
        busy = busy_fraction(5.0)
    return "unknown" if busy is None else f"{busy:.0%} busy"


@contextmanager
def threads(count: int) -> Iterator[str]:
    """Limit numpy's BLAS (and torch) to ``count`` threads; yield the BLAS it found."""
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:  # the bench session installs it; without it the count is unknown
        yield "unknown (install threadpoolctl to set and report the BLAS threads)"
        return
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(count)
    with threadpoolctl.threadpool_limits(limits=count, user_api="blas"):
        blas = [
            f"{pool['internal_api']} {pool['version']} ({pool.get('architecture', '?')}, "
            f"{pool['num_threads']} threads)"
            for pool in threadpoolctl.threadpool_info()
            if pool["user_api"] == "blas" and "numpy" in pool["filepath"]
        ]
        yield "; ".join(blas) or "not found"


def machine(blas: str, thread_count: int) -> dict[str, Any]:
    """The facts a reader needs to compare these numbers with their own."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {"numpy": np.__version__}
    for name in ("scipy", "torch"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = "not installed"
    env = {
        key: os.environ[key]
        for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        if key in os.environ
    }
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **versions,
        "numpy BLAS": blas,
        "threads": f"{thread_count} (numpy's BLAS via threadpoolctl, torch.set_num_threads)",
        "OpenBLAS environment": ", ".join(f"{k}={v}" for k, v in env.items()) or "unset",
        "load average before the run": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# ---------------------------------------------------------------------------
# The benchmarks
# ---------------------------------------------------------------------------


def _qkv(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: type[np.floating[Any]]
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Standard normal q, k, v of one shape and dtype."""
    q, k, v = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    return q, k, v


def bench_softmax(report: Report, rounds: int) -> None:
    """softmax vs scipy.special.softmax(axis=-1) on (2048, 2048)."""
    from scipy.special import softmax as scipy_softmax

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2048, 2048)).astype(dtype)
        ours, ref = interleaved([partial(softmax, x), partial(scipy_softmax, x, axis=-1)], rounds)
        report.rows.append(
            Row(
                f"softmax (2048, 2048) {np.dtype(dtype).name} vs scipy.special.softmax",
                ours,
                ref,
                goal="<= 0.6",
            )
        )


def bench_running_example(report: Report, rounds: int) -> None:
    """self_attention on the 3x4 running example vs the plain NumPy formula.

    What a small call costs beyond the arithmetic: the checks (once), the overflow
    guards and a result that owns its arrays. Each timed call is a loop of 200 calls.
    """
    from attention_from_scratch.examples import fluffy_blue_creature
    from attention_from_scratch.self_attention import self_attention

    ex = fluffy_blue_creature()
    x, params = ex.x, ex.params
    w_q, w_k, w_v = params.w_q, params.w_k, params.w_v

    def plain() -> object:
        q, k, v = x @ w_q, x @ w_k, x @ w_v
        s = q @ k.T / np.sqrt(q.shape[-1])
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)) @ v

    def loop(function: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            for _ in range(200):
                function()
            return None

        return run

    ours, ref = interleaved([loop(partial(self_attention, x, params)), loop(plain)], rounds)
    report.rows.append(
        Row(
            "self_attention, 3x4 running example, vs the plain NumPy formula",
            ours / 200,
            ref / 200,
            unit="us",
            goal="<= 6",
        )
    )


def bench_comparison(report: Report, rounds: int, make: Callable[[], Comparison]) -> None:
    """Time a :class:`~benchmarks.training.Comparison`, one row per call of each side.

    Each timed call is a loop of ``count`` calls (as in :func:`bench_running_example`);
    the row reports the time of one call.
    """
    comparison = make()  # builds the data and checks the two sides once
    count = comparison.count

    def loop(function: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            for _ in range(count):
                function()
            return None

        return run

    ours, ref = interleaved([loop(comparison.ours), loop(comparison.reference)], rounds)
    report.rows.append(
        Row(comparison.what, ours / count, ref / count, unit="us", goal=comparison.goal)
    )
    report.accuracy.update(comparison.accuracy)


def bench_attention(report: Report, rounds: int, shape: tuple[int, int, int, int]) -> None:
    """scaled_dot_product_attention vs torch SDPA, and vs the two products alone."""
    try:
        import torch
        from torch.nn.functional import scaled_dot_product_attention as torch_sdpa
    except ImportError:
        report.notes.append("torch is not installed: the attention rows against torch are skipped")
        torch = None
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        q, k, v = _qkv(rng, shape, dtype)
        k_t = np.swapaxes(k, -1, -2)

        def ours(q: Any = q, k: Any = k, v: Any = v) -> object:
            return scaled_dot_product_attention(q, k, v)

        def stacked(q: Any = q, k_t: Any = k_t, v: Any = v) -> object:
            return np.matmul(np.matmul(q, k_t), v)  # (q k^T) v: the two products alone

        functions: list[Callable[[], object]] = [ours, stacked]
        parallel = head_parallel(q, k_t, v, report.threads)
        if parallel is not None:
            functions.append(parallel)
        if torch is not None:
            tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
            functions.append(partial(torch_sdpa, tq, tk, tv))
        times = interleaved(functions, rounds)
        ours_time, stacked_time = times[0], times[1]
        parallel_time = times[2] if parallel is not None else math.inf
        torch_time = times[-1] if torch is not None else math.nan
        # The floor: the best NumPy arrangement of the two products, whichever it is.
        floor, arrangement = min(
            (stacked_time, f"stacked, BLAS on {report.threads} threads"),
            (parallel_time, f"head-parallel, {report.threads} threads x 1 BLAS thread"),
        )
        name = np.dtype(dtype).name
        if torch is not None:
            goal = "<= 2.4" if dtype == np.float32 else ""
            report.rows.append(
                Row(
                    f"scaled_dot_product_attention {shape} {name} (with weights) vs torch SDPA",
                    ours_time,
                    torch_time,
                    goal=goal,
                )
            )
            report.rows.append(
                Row(
                    f"floor: q k^T and w v stacked {shape} {name} vs torch SDPA",
                    stacked_time,
                    torch_time,
                )
            )
            if parallel is not None:
                report.rows.append(
                    Row(
                        f"floor: q k^T and w v head-parallel {shape} {name} vs torch SDPA",
                        parallel_time,
                        torch_time,
                    )
                )
        report.rows.append(
            Row(
                f"scaled_dot_product_attention {shape} {name} vs the floor ({arrangement})",
                ours_time,
                floor,
                goal="<= 1.8",
            )
        )


def head_parallel(q: Any, k_t: Any, v: Any, threads: int) -> Callable[[], object] | None:
    """The two products on ``threads`` threads, two heads per task, BLAS at one thread each.

    None without threadpoolctl (BLAS's threads could not be held to one) or with one
    thread (it is then the stacked arrangement).
    """
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        return None
    if threads < 2:
        return None
    *_, n, d_k = q.shape
    heads_q, heads_k, heads_v = (
        q.reshape(-1, n, d_k),
        k_t.reshape(-1, d_k, k_t.shape[-1]),
        v.reshape(-1, v.shape[-2], v.shape[-1]),
    )
    chunks = [slice(h, h + 2) for h in range(0, heads_q.shape[0], 2)]
    pool = ThreadPoolExecutor(max_workers=threads)
    controller = threadpoolctl.ThreadpoolController()

    def product(at: slice) -> object:
        return np.matmul(np.matmul(heads_q[at], heads_k[at]), heads_v[at])

    def run() -> object:
        with controller.limit(limits=1, user_api="blas"):
            return [done.result() for done in [pool.submit(product, at) for at in chunks]]

    return run


def bench_breakdown(report: Report, rounds: int, shape: tuple[int, int, int, int]) -> None:
    """Where the time of scaled_dot_product_attention goes, step by step (float32).

    Each step is timed on its own, on one thread, interleaved with the others: the
    checks of q, k, v, the scaled product into a new n x m buffer, the softmax in place
    on it (run again on its own output, which costs the same), the product with v, and,
    for comparison, the exponentials alone, which any softmax must compute. The shares
    are of the whole call on one thread (``AFS_NUM_THREADS=1``), which runs the steps a
    few heads at a time, in cache, so it takes less than their sum; the whole call on
    every thread the harness allows is the last row.
    """
    from attention_from_scratch._checks import check_qkv
    from attention_from_scratch._kernel import THREADS_ENV, softmax_rows

    rng = np.random.default_rng(3)
    q, k, v = _qkv(rng, shape, np.float32)
    m = shape[-2]
    scale = np.float32(1 / np.sqrt(shape[-1]))
    buffer = np.matmul(q * scale, np.swapaxes(k, -1, -2))  # S, then softmax(S), ...
    rows = buffer.reshape(-1, m)
    exponentials = np.empty_like(rows)
    frozen = rows.copy()  # the scores, never overwritten

    def scores() -> object:
        out = np.empty(buffer.shape, dtype=np.float32)
        return np.matmul(np.multiply(q, scale), np.swapaxes(k, -1, -2), out=out)

    def one_thread() -> object:
        previous = os.environ.get(THREADS_ENV)
        os.environ[THREADS_ENV] = "1"
        try:
            return scaled_dot_product_attention(q, k, v)
        finally:
            if previous is None:
                del os.environ[THREADS_ENV]
            else:
                os.environ[THREADS_ENV] = previous

    steps: list[tuple[str, Callable[[], object]]] = [
        ("the whole call on one thread", one_thread),
        ("checks: the largest and smallest entry of q, k, v", partial(check_qkv, q, k, v)),
        ("S = (q scale) k^T into a new n x m buffer", scores),
        (
            "softmax of the rows of S, in place",
            partial(softmax_rows, rows, rows, allow_empty_rows=True, report=lambda: None),
        ),
        ("O = P v", partial(np.matmul, buffer, v)),
        (
            "for comparison: np.exp alone over n x m scores",
            partial(np.exp, frozen, out=exponentials),
        ),
        (
            f"the whole call on {report.threads} threads",
            partial(scaled_dot_product_attention, q, k, v),
        ),
    ]
    times = interleaved([step for _, step in steps], rounds)
    report.breakdown = [
        (f"{what} {shape} float32" if i == 0 else what, seconds)
        for i, ((what, _), seconds) in enumerate(zip(steps, times, strict=True))
    ]


def bench_tiled(report: Report, rounds: int, n_time: int, sizes: Sequence[int]) -> None:
    """Tiled vs dense attention: time at n_time, peak memory and accuracy as n grows."""
    d = 64
    rng = np.random.default_rng(2)
    q, k, v = _qkv(rng, (n_time, d), np.float32)
    tiled, dense = interleaved(
        [partial(tiled_attention, q, k, v), partial(scaled_dot_product_attention, q, k, v)],
        rounds,
    )
    report.rows.append(
        Row(
            f"tiled_attention n = {n_time}, d = {d}, float32 vs dense", tiled, dense, goal="<= 1.5"
        )
    )
    memory: dict[str, list[float]] = {"n": [], "dense_mib": [], "tiled_mib": []}
    for n in sizes:
        q, k, v = _qkv(rng, (n, d), np.float32)
        memory["n"].append(float(n))
        memory["dense_mib"].append(
            peak_traced_bytes(partial(scaled_dot_product_attention, q, k, v)) / MiB
        )
        memory["tiled_mib"].append(peak_traced_bytes(partial(tiled_attention, q, k, v)) / MiB)
    report.memory = memory
    n_check = 8192 if 8192 in sizes else max(sizes)
    for dtype in (np.float32, np.float64):
        q, k, v = _qkv(rng, (n_check, d), dtype)
        exact = scaled_dot_product_attention(q, k, v).output
        error = float(np.max(np.abs(tiled_attention(q, k, v) - exact)))
        report.accuracy[f"max |tiled - dense| at n = {n_check}, d = {d}, {np.dtype(dtype)}"] = (
            error
        )
        del exact


def _import_time(statement: str, env: dict[str, str]) -> float:
    """Seconds a fresh interpreter spends in ``statement`` (timed inside it)."""
    code = (
        "import time; start = time.perf_counter(); "
        f"{statement}; print(time.perf_counter() - start)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    )
    return float(done.stdout)


def bench_import(report: Report, rounds: int) -> None:
    """``import attention_from_scratch`` vs ``import numpy``, each in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # time the import of compiled bytecode,
        env["PYTHONPYCACHEPREFIX"] = cache  # as an installed package has it
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path.cwd()), env.get("PYTHONPATH")]))
        statements = ["import attention_from_scratch", "import numpy"]
        for statement in statements:
            _import_time(statement, env)  # compile once
        times: list[list[float]] = [[], []]
        for _ in range(rounds):
            for elapsed, statement in zip(times, statements, strict=True):
                elapsed.append(_import_time(statement, env))
        ours, ref = (statistics.median(t) for t in times)
        report.rows.append(
            Row("import attention_from_scratch vs import numpy", ours, ref, goal="<= 1.3")
        )
        listing = (
            "import sys; before = set(sys.modules); import numpy; after_numpy = set(sys.modules);"
            " import attention_from_scratch;"
            " new = {m.split('.')[0] for m in set(sys.modules) - after_numpy};"
            " print(sorted(new - set(sys.stdlib_module_names) - {'attention_from_scratch', 'numpy'}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", listing], check=True, capture_output=True, text=True, env=env
        )
        report.notes.append(
            "third-party modules imported by `import attention_from_scratch` beyond numpy: "
            f"{done.stdout.strip()}"
        )


def main(argv: Sequence[str] | None = None) -> Report:
    """Run every benchmark, print the Markdown report and optionally save it as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sizes")
    parser.add_argument("--threads", type=int, default=2, help="BLAS and torch threads (2)")
    parser.add_argument(
        "--rounds", type=int, default=None, help=f"rounds of {BURST} timed calls per function"
    )
    parser.add_argument("--save", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each benchmark, wait up to this long for the CPUs to be idle (< 10%% busy)",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 10)
    sizes = [256, 512, 1024] if args.quick else [1024, 2048, 4096, 8192, 16384]
    shape = (2, 2, 128, 16) if args.quick else (4, 8, 512, 64)
    benchmarks: list[tuple[str, Callable[[Report], None]]] = [
        ("softmax", partial(bench_softmax, rounds=rounds)),
        ("running example", partial(bench_running_example, rounds=rounds)),
        *(
            (name, partial(bench_comparison, rounds=rounds, make=make))
            for name, make in COMPARISONS
        ),
        ("attention", partial(bench_attention, rounds=rounds, shape=shape)),
        ("breakdown", partial(bench_breakdown, rounds=rounds, shape=shape)),
        (
            "tiled",
            partial(
                bench_tiled,
                rounds=max(2, rounds // 2),
                n_time=1024 if args.quick else 4096,
                sizes=sizes,
            ),
        ),
        ("import", partial(bench_import, rounds=max(5, 3 * rounds))),
    ]
    with threads(args.threads) as blas:
        report = Report(machine=machine(blas, args.threads), threads=args.threads)
        seen = []
        for name, bench in benchmarks:
            if args.wait_quiet > 0:
                seen.append(f"{name}: {wait_until_quiet(0.1, args.wait_quiet)}")
            bench(report)
        if seen:
            report.machine["CPU use by others before each benchmark"] = ", ".join(seen)
    report.machine["load average after the run"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report.markdown()
    print(text)
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        print(f"\nsaved to {args.save}")
    return report


if __name__ == "__main__":
    main()

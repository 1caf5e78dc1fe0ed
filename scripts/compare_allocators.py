#!/usr/bin/env python3
"""The train step under each host allocator, and against an older revision, side by side.

Every (setting, round) is one fresh ``python benchmark.py --mode=train`` process (float32,
``sharding``, the demo's shapes from configs/benchmark.py); the settings alternate within
each round so that machine load hits all of them alike. For each process it records the
benchmark's median step and first loss (the same batch and parameters in every setting, so
equal first losses show the same math), and from ``os.wait4`` the process's user and kernel
CPU seconds and minor page faults. The current revision's benchmark also reports the
kernel share of the CPU time in steady state (the median timed step's,
``cpu.kernel_fraction_median_step``) and over all timed steps (``cpu.kernel_fraction``).
Its ``tbbmalloc`` runs (``mimalloc`` where there is no ``tbb`` wheel) first run the roofline
probes, so they give the step's FLOP/s as a share of the measured matmul peak.

Settings: ``base`` = the ``--baseline`` checkout (e.g. ``git worktree add /tmp/base 6a8e698``)
with glibc's defaults, as it ran; ``glibc`` / ``hugetlb`` / ``tbbmalloc`` / ``mimalloc`` /
``tcmalloc`` = this checkout with ``CSC_JAX_ALLOCATOR=system`` / ``glibc``
(``glibc.malloc.hugetlb=1``) / ``tbbmalloc`` (the ``tbb`` wheel) / ``mimalloc`` (the
``cmeel-mimalloc`` wheel) / ``tcmalloc`` (the system's); a preloaded allocator that is not
installed here is skipped. ``previous`` = the ``--previous`` checkout (an earlier revision
that already has ``csc_jax.allocator``) with ``tbbmalloc``: what this revision's own code
changes gain under the same allocator.

Example (what docs/performance.md's allocator table ran):
    python scripts/compare_allocators.py --baseline /tmp/base --rounds 2 --steps 8 \\
        --backbone demo --out runs/allocators
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from csc_jax import errors  # noqa: E402
from csc_jax.allocator import PRELOAD_ENV, library  # noqa: E402
from csc_jax.io_utils import atomic_write, atomic_write_json, markdown_table  # noqa: E402

# setting -> (which checkout, CSC_JAX_ALLOCATOR); the baseline predates csc_jax.allocator.
SETTINGS = {
    "base": ("baseline", None),
    "glibc": ("current", "system"),
    "hugetlb": ("current", "glibc"),
    "tbbmalloc": ("current", "tbbmalloc"),  # the pip wheel (x86-64; skipped otherwise)
    "mimalloc": ("current", "mimalloc"),
    "tcmalloc": ("current", "tcmalloc"),  # where the system has it (skipped otherwise)
    # an earlier revision that has csc_jax.allocator, under its default (the pip wheel)
    "previous": ("previous", "tbbmalloc"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline", default="", help="checkout of the older revision ('' = skip)")
    p.add_argument(
        "--previous", default="", help="checkout of an earlier allocator-aware revision ('' = skip)"
    )
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma list of settings")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    p.add_argument("--steps", type=int, default=8, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per process")
    p.add_argument("--out", default="runs/allocators", help="folder for the JSON and table")
    p.add_argument(
        "--backbone",
        default="",
        help="also time this Conv-TasNet backbone in every process (e.g. 'demo'; '' = skip)",
    )
    p.add_argument("--debug", action="store_true", help="tracebacks for expected errors")
    return p.parse_args(argv)


def run_once(
    repo: str,
    allocator: str | None,
    steps: int,
    warmup: int,
    out_json: str,
    roofline: bool,
    backbone: str = "",
) -> dict:
    """One benchmark process; its train-step row plus the process's rusage.

    ``roofline``: also run the machine's roofline probes first (this checkout only), so the
    row gives the step's FLOP/s as a fraction of the measured matmul peak. ``backbone``: also
    time that backbone in the same process (its median step and steady-state kernel share).
    """
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("GLIBC_TUNABLES", None)
    env.pop("CSC_JAX_ALLOCATOR", None)
    env.pop("CSC_JAX_ALLOCATOR_APPLIED", None)
    for key in (k for tuned in PRELOAD_ENV.values() for k in tuned):
        env.pop(key, None)
    if allocator is not None:
        env["CSC_JAX_ALLOCATOR"] = allocator
    env["PYTHONPATH"] = repo
    cmd = [
        sys.executable, "benchmark.py", "--config", "configs/benchmark.py",
        "--mode=" + ",".join(["roofline"] * roofline + ["train"] + ["backbone"] * bool(backbone)),
        "--parallel=sharding", "--dtype=float32", f"--steps={steps}", f"--warmup={warmup}",
        f"--out={out_json}",
    ]  # fmt: skip
    if backbone:
        cmd.append(f"--backbone={backbone}")
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise errors.CscError(f"{repo}: benchmark.py exited {proc.returncode}: {output[-400:]}")
    with open(out_json) as f:
        rows = json.load(f)["results"]
    row = next(r for r in rows if "step_time_s" in r)
    bb = next((r for r in rows if r.get("kind") == "backbone"), None) if backbone else None
    bb_cpu = (bb or {}).get("cpu") or {}
    return {
        "backbone_median_step_s": bb["step_time_s"]["median"] if bb else None,
        "backbone_kernel_fraction_median_step": bb_cpu.get("kernel_fraction_median_step"),
        "median_step_s": row["step_time_s"]["median"],
        "first_loss": row.get("first_loss"),
        "kernel_fraction_per_step": (row.get("cpu") or {}).get("kernel_fraction"),
        "kernel_fraction_median_step": (row.get("cpu") or {}).get("kernel_fraction_median_step"),
        "minor_faults_per_step": (row.get("cpu") or {}).get("minor_faults_per_step"),
        "fraction_of_matmul_peak": (row.get("roofline") or {}).get("fraction_of_matmul_peak"),
        "matmul_peak_gflop_per_s": (row.get("roofline") or {}).get("matmul_peak_gflop_per_s"),
        "achieved_gflop_per_s": (row.get("roofline") or {}).get("achieved_gflop_per_s"),
        "process_user_s": usage.ru_utime,
        "process_kernel_s": usage.ru_stime,
        "process_minor_faults": usage.ru_minflt,
        "wall_s": time.perf_counter() - start,
    }


def table(runs: dict[str, list[dict]]) -> str:
    base = statistics.median(r["median_step_s"] for r in runs["base"]) if "base" in runs else None
    rows = []
    with_backbone = any(r.get("backbone_median_step_s") for rs in runs.values() for r in rs)
    for name, rs in runs.items():
        med = statistics.median(r["median_step_s"] for r in rs)
        k = [r["kernel_fraction_per_step"] for r in rs if r["kernel_fraction_per_step"] is not None]
        km = [r.get("kernel_fraction_median_step") for r in rs]
        km = [x for x in km if x is not None]
        cpu = sum(r["process_user_s"] + r["process_kernel_s"] for r in rs)
        rows.append([
            name,
            " / ".join(f"{r['median_step_s']:.3f}" for r in rs),
            f"{base / med:.2f}x" if base else "",
            " / ".join(f"{100 * x:.1f}" for x in km) if km else "not reported",
            " / ".join(f"{100 * x:.1f}" for x in k) if k else "not reported",
            f"{100 * sum(r['process_kernel_s'] for r in rs) / cpu:.1f}",
            f"{statistics.median(r['process_minor_faults'] for r in rs) / 1e6:.2f} M",
            " / ".join(f"{r['first_loss']:.6f}" for r in rs),
            " / ".join(
                f"{r['achieved_gflop_per_s']:.1f} of {r['matmul_peak_gflop_per_s']:.1f} "
                f"({100 * r['fraction_of_matmul_peak']:.0f} %)"
                for r in rs
                if r["fraction_of_matmul_peak"] is not None
            ),
        ])  # fmt: skip
        if with_backbone:
            rows[-1] += [
                " / ".join(f"{r['backbone_median_step_s']:.3f}" for r in rs),
                " / ".join(
                    f"{100 * r['backbone_kernel_fraction_median_step']:.1f}"
                    if r["backbone_kernel_fraction_median_step"] is not None
                    else "not reported"
                    for r in rs
                ),
            ]
    head = ["setting", "median step s (per round)", "speed-up vs base",
            "kernel % of the median step", "kernel % over the timed steps",
            "kernel % whole process", "minor faults per process", "first loss",
            "step GFLOP/s of matmul peak"]  # fmt: skip
    if with_backbone:
        head += ["backbone s/step", "backbone kernel % (median step)"]
    return markdown_table(head, rows)


def main(argv=None) -> int:
    args = parse_args(argv)

    def run():
        names = [n.strip() for n in args.settings.split(",") if n.strip()]
        for n in names:
            if n not in SETTINGS:
                raise errors.ConfigError(
                    f"--settings: unknown setting {n!r} (known: {list(SETTINGS)})"
                )
        for name, checkout in (("base", args.baseline), ("previous", args.previous)):
            if name in names and not checkout:
                names.remove(name)
        for kind in PRELOAD_ENV:
            if kind in names and library(kind) is None:
                print(f"{kind}: not installed here, skipped", flush=True)
                names.remove(kind)
        for flag, checkout in (("--baseline", args.baseline), ("--previous", args.previous)):
            if checkout and not os.path.isfile(os.path.join(checkout, "benchmark.py")):
                raise errors.ConfigError(f"{flag}={checkout}: no benchmark.py there")
        os.makedirs(args.out, exist_ok=True)
        runs: dict[str, list[dict]] = {n: [] for n in names}
        # The pip-only default allocator's runs also measure the roofline.
        with_roofline = next((n for n in ("tbbmalloc", "mimalloc") if n in names), None)
        for rnd in range(args.rounds):
            for name in names:
                which, allocator = SETTINGS[name]
                repo = {"baseline": args.baseline, "previous": args.previous}.get(which, REPO)
                out_json = os.path.abspath(os.path.join(args.out, f"{name}.{rnd}.json"))
                roofline = name == with_roofline
                r = run_once(
                    repo, allocator, args.steps, args.warmup, out_json, roofline, args.backbone
                )
                runs[name].append(r)
                print(f"round {rnd} {name}: {r['median_step_s']:.3f} s/step", flush=True)
        text = table(runs)
        atomic_write_json(
            os.path.join(args.out, "allocators.json"), {"argv": sys.argv, "runs": runs}
        )
        atomic_write(os.path.join(args.out, "allocators.md"), text + "\n")
        print(text)

    return errors.run_main(run, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

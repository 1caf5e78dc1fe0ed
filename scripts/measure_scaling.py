"""Training throughput on 1, 2 and 4 devices in both parallel modes ('sharding', 'pmap').

    python scripts/measure_scaling.py                      # simulated CPU devices
    python scripts/measure_scaling.py --devices 1,2,4,8    # or on a real multi-device host

Each (device count, mode) runs in a fresh process (the simulated CPU device count is fixed by
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX starts) with the DEFAULT
config (csc_jax.config.base_config(): the global batch stays 8, so more devices means fewer
rows each). It compiles, runs ``--warmup`` steps, then times ``--steps`` steps of the real
loop body (grain batch -> device -> compiled step), blocking on the last one. On a CPU host,
simulated devices share the same cores, so this measures the parallel code path's overhead,
not a speed-up. The 1-, 5- and 15-minute load averages are recorded before and after.

Prints a Markdown table and writes the raw numbers as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run as `python scripts/measure_scaling.py` from a checkout

from csc_jax import allocator  # noqa: E402

allocator.ensure()  # before JAX starts (the children inherit the settings)


def _child(num_devices: int, mode: str, steps: int, warmup: int) -> dict:
    import jax

    from csc_jax.config import base_config
    from csc_jax.training import setup

    config = base_config()
    config.parallel = mode
    devices = jax.devices()[:num_devices]
    assert len(devices) == num_devices, (len(jax.devices()), num_devices)
    program = setup.build(config, devices=devices)  # the training loop's own set-up
    dp, iterator = program.dp, program.iterator
    k = config.mixing.num_conditions
    state = program.init_state()
    t0 = time.perf_counter()
    for _ in range(warmup):  # the first call compiles
        state, metrics = dp.step(state, dp.put_batch(next(iterator)))
    jax.block_until_ready(metrics)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        state, metrics = dp.step(state, dp.put_batch(next(iterator)))
    jax.block_until_ready(metrics)
    elapsed = time.perf_counter() - t0
    program.close()
    crop_seconds = config.data.batch_size * k * config.data.segment_seconds
    return {
        "devices": num_devices,
        "mode": mode,
        "platform": devices[0].platform,
        "steps": steps,
        "seconds": elapsed,
        "steps_per_sec": steps / elapsed,
        "audio_sec_per_sec": steps * crop_seconds / elapsed,
        "warmup_seconds_incl_compile": warmup_s,
        "global_batch": config.data.batch_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default="1,2,4")
    parser.add_argument("--modes", default="sharding,pmap")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=True,
                        help="simulate the devices on the host CPU (default)")  # fmt: skip
    parser.add_argument("--out", default="runs/scaling_cpu.json")
    parser.add_argument("--child", nargs=2, metavar=("DEVICES", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = _child(int(args.child[0]), args.child[1], args.steps, args.warmup)
        print("RESULT " + json.dumps(result), flush=True)
        return

    results = []
    load_before = os.getloadavg()
    for n in [int(x) for x in args.devices.split(",")]:
        for mode in args.modes.split(","):
            env = dict(os.environ)
            if args.cpu:
                env["JAX_PLATFORMS"] = "cpu"
                env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
            cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), mode]
            cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
            proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{n} devices, {mode}: failed\n{proc.stderr[-3000:]}")
            results.append(json.loads(line[0][len("RESULT ") :]))
            r = results[-1]
            print(
                f"{n} device(s) {mode:8s}: {r['steps_per_sec']:.3f} steps/s, "
                f"{r['audio_sec_per_sec']:.1f} audio s/s",
                flush=True,
            )
    load_after = os.getloadavg()
    report = {
        "results": results,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpu_count": os.cpu_count(),
        "simulated_cpu_devices": args.cpu,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    label = "CPU-simulated devices" if args.cpu else results[0]["platform"]
    print(f"\n| devices ({label}) | mode | steps/s | audio s/s |")
    print("|---|---|---|---|")
    for r in results:
        print(
            f"| {r['devices']} | {r['mode']} | {r['steps_per_sec']:.3f} | "
            f"{r['audio_sec_per_sec']:.1f} |"
        )
    print(
        f"\nload average (1/5/15 min) before {tuple(round(x, 2) for x in load_before)}, "
        f"after {tuple(round(x, 2) for x in load_after)}; {os.cpu_count()} CPU cores"
    )


if __name__ == "__main__":
    main()

"""Train asteroid's PyTorch Conv-TasNet for N timed steps at given shapes; print JSON.

The reference point of ``benchmark.py --mode=backbone``: the same Conv-TasNet layout
(learned encoder with ReLU, gLN TCN with skip channels = bottleneck, 2-source sigmoid masks,
transposed-conv decoder), the same batch of Gaussian sources, utterance-level PIT negative
SI-SNR (asteroid ``PITLossWrapper(pairwise_neg_sisdr, pit_from='pw_mtx')``) and Adam, in eager
PyTorch with ``torch.set_num_threads(--threads)``, on ``--device`` (cpu or cuda). Each timed step
is ``zero_grad, forward, loss, backward, optimizer.step``, ended on CUDA with
``torch.cuda.synchronize()``. On CUDA, float32 matmuls and convolutions may use TF32 (as JAX's
default matmul precision does on the same GPUs); ``--no_tf32`` turns that off.

torch is NOT a dependency of csc-jax; run this with its own interpreter:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy scipy soundfile cffi requests \\
        huggingface_hub asteroid-filterbanks
    /tmp/torchvenv/bin/pip install --no-deps asteroid==0.7.0   # its other deps are unused here
    /tmp/torchvenv/bin/python scripts/pytorch_convtasnet_baseline.py --preset=demo

(``asteroid``'s declared dependencies pin torchaudio/pytorch-lightning versions that would
replace the local torch wheel; importing ``asteroid.models.ConvTasNet`` and
``asteroid.losses`` needs only the packages above.) ``benchmark.py --pytorch_python=...``
runs this script with the exact shapes of its JAX backbone measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

PRESETS = {
    # Conv-TasNet paper (N=512, L=16, B=Sc=128, H=512, P=3, X=8, R=3), 8 kHz, 4 s, batch 2.
    "paper": dict(
        enc_filters=512,
        enc_kernel=16,
        bottleneck=128,
        hidden=512,
        conv_kernel=3,
        blocks=8,
        repeats=3,
        sample_rate=8000,
        segment_seconds=4.0,
        batch_size=2,
    ),
    # csc_jax.config.base_config()'s waveform front end and trunk (the keys 'waveform' uses) at
    # 16 kHz, 1 s, batch 8 targets x K=3 mixtures.
    "demo": dict(
        enc_filters=128,
        enc_kernel=64,
        bottleneck=64,
        hidden=128,
        conv_kernel=3,
        blocks=4,
        repeats=2,
        sample_rate=16000,
        segment_seconds=1.0,
        batch_size=24,
    ),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), help="shapes; explicit flags override")
    p.add_argument("--name", default=None)
    for field in PRESETS["paper"]:
        kind = float if field == "segment_seconds" else int
        p.add_argument(f"--{field}", type=kind, default=None)
    p.add_argument("--n_src", type=int, default=2)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--no_tf32", action="store_true", help="CUDA: keep float32 matmuls exact")
    args = p.parse_args(argv)
    base = PRESETS.get(args.preset or "", {})
    for field in PRESETS["paper"]:
        if getattr(args, field) is None:
            if field not in base:
                p.error(f"--{field} is required without --preset")
            setattr(args, field, base[field])
    if args.name is None:
        args.name = args.preset or "custom"
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error("need --steps >= 1, --warmup >= 0, --threads >= 1")
    if args.enc_kernel % 2:
        p.error("--enc_kernel must be even (stride is enc_kernel / 2)")
    return args


def _mapped_allocator() -> str:
    """The preloaded malloc this process has mapped (read from /proc/self/maps), so the report
    shows that PyTorch ran with the same allocator as JAX; 'system' when none is."""
    names = ("libtbbmalloc_proxy", "libtcmalloc", "libmimalloc", "libjemalloc")
    try:
        with open("/proc/self/maps") as f:
            hits = {line.split()[-1] for line in f if any(n in line for n in names)}
    except OSError:
        return "unknown"
    return ", ".join(sorted(hits)) or "system"


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit(f"--device={args.device} but torch {torch.__version__} sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.allow_tf32 = not args.no_tf32

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    try:
        import asteroid
        from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr
        from asteroid.models import ConvTasNet
    except ImportError as e:
        sys.exit(f"asteroid is not importable in {sys.executable} ({e}); see this script's doc")

    torch.manual_seed(args.seed)
    model = ConvTasNet(
        n_src=args.n_src,
        n_blocks=args.blocks,
        n_repeats=args.repeats,
        bn_chan=args.bottleneck,
        hid_chan=args.hidden,
        skip_chan=args.bottleneck,
        conv_kernel_size=args.conv_kernel,
        norm_type="gLN",
        mask_act="sigmoid",
        fb_name="free",
        kernel_size=args.enc_kernel,
        n_filters=args.enc_filters,
        stride=args.enc_kernel // 2,
        encoder_activation="relu",  # as the paper and csc-jax's WaveformEncoder
        sample_rate=args.sample_rate,
    )
    model.to(device).train()
    loss_fn = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    t = int(round(args.segment_seconds * args.sample_rate))
    gen = torch.Generator().manual_seed(args.seed)
    sources = 0.1 * torch.randn(args.batch_size, args.n_src, t, generator=gen).to(device)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        mixture = sources.sum(dim=1)
        estimates = model(mixture)
        loss = loss_fn(estimates, sources)
        loss.backward()
        opt.step()
        sync()
        return loss.detach()

    # Forward FLOPs (convolutions/matmuls only) of one step, counted on an extra step: a
    # cross-check of XLA's count. The backward is not reported: torch's counter gave 3.7x the
    # forward for this model (more than the ~2x of the backward's two convolutions per
    # forward one), so it is not a trustworthy reference.
    flops_forward = None
    try:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            with torch.no_grad():
                model(sources.sum(dim=1))
        flops_forward = int(counter.get_total_flops())
    except ImportError:
        pass
    first_loss = float(step())
    for _ in range(args.warmup):
        step()
    times = []
    loss = first_loss
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    loss = float(loss)
    med = statistics.median(times)
    audio_s = args.batch_size * args.segment_seconds
    print(
        json.dumps(
            {
                "implementation": f"asteroid {asteroid.__version__} ConvTasNet (eager)",
                "allocator": _mapped_allocator(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": str(device),
                "device_name": (
                    torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
                ),
                "tf32": device.type == "cuda" and not args.no_tf32,
                "name": args.name,
                "shapes": {f: getattr(args, f) for f in list(PRESETS["paper"]) + ["n_src"]},
                "num_params": int(sum(p.numel() for p in model.parameters())),
                "step_time_s": {
                    "median": med,
                    "min": min(times),
                    "max": max(times),
                    "mean": statistics.fmean(times),
                    "n": len(times),
                },
                "audio_s_per_s": audio_s / med,
                "flops_forward": flops_forward,
                "flops_counted": "forward convolutions/matmuls (torch.utils.flop_counter)",
                "first_loss": first_loss,
                "last_loss": loss,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

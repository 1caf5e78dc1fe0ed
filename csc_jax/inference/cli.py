"""Command line of a trained model: ``eval.py embed|score|extract`` and the ``csc-jax`` script.

::

    python eval.py embed   --workdir W --out emb.npy FILE... | --list files.txt
    python eval.py score   --workdir W --trials trials.txt --audio_root DIR --out scores.txt
    python eval.py extract --workdir W --mixture mix.wav --enrollment enr.wav --out target.wav

Outputs are what their names say: ``embed`` writes an (N, D) array to a .npy file or one
array per path to a .npz file; ``extract`` writes the format of the --out extension (wav,
flac, ogg, ...) at the mixture's sample rate (--rate to choose another). Inputs and the output
path (its extension included) are checked before the model is loaded (JAX is imported only
then). Outputs are written atomically (``csc_jax.io_utils``) and an existing ``--out`` is
refused unless ``--overwrite``. Expected errors (a missing or corrupt input, a bad trial list,
an existing output, a missing or damaged checkpoint) print one ``error: ...`` line and exit
with their class's status (``csc_jax.errors``); ``--debug`` shows their traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np

from csc_jax import audio_io, errors, io_utils
from csc_jax.errors import ConfigError, DataError

SUBCOMMANDS = ("embed", "score", "extract")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _parser(prog: str) -> argparse.ArgumentParser:
    about = "Use a trained csc-jax model: embeddings, verification scores, target extraction."
    if prog == "eval.py":
        about += " Without a subcommand, eval.py runs the verification protocol (--help there)."
    p = argparse.ArgumentParser(
        prog=prog,
        description=about,
        epilog="--debug (or CSC_JAX_DEBUG=1) shows the traceback of an expected error.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--workdir", required=True, help="training workdir (or checkpoints dir)")
        sp.add_argument("--step", type=int, default=None, help="checkpoint step (default latest)")
        sp.add_argument("--out", required=True, help="output file")
        sp.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    def batching(sp):
        sp.add_argument("--batch_size", type=_positive_int, default=16)
        sp.add_argument("--no_progress", action="store_true", help="no bar (default: >64 files)")

    e = sub.add_parser(
        "embed", help="speaker embeddings of audio files -> .npy (N, D) or .npz (path -> (D,))"
    )
    common(e)
    e.add_argument("files", nargs="*", help="audio files (wav/flac/..., any rate/channels)")
    e.add_argument("--list", help="text file with one audio path per line")
    batching(e)

    s = sub.add_parser("score", help="score a trial list: 'enroll test score' lines + EER/minDCF")
    common(s)
    s.add_argument("--trials", required=True, help="VoxCeleb-format trial list")
    s.add_argument("--audio_root", required=True, help="folder the trial keys are relative to")
    batching(s)

    x = sub.add_parser(
        "extract",
        help="extract the enrolled speaker from a mixture -> audio file (format: --out's "
        "extension; rate: the mixture's)",
    )
    common(x)
    x.add_argument("--mixture", required=True, help="audio with the target and interference")
    x.add_argument("--enrollment", required=True, help="clean audio of the target speaker")
    x.add_argument(
        "--rate",
        type=_positive_int,
        default=None,
        help="output sample rate in Hz (default: the mixture's)",
    )
    return p


def _read_list(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f]
    except FileNotFoundError:
        raise FileNotFoundError(f"--list file {path} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read --list file {path}: {e}") from e
    files = [ln for ln in lines if ln and not ln.startswith("#")]
    if not files:
        raise DataError(f"--list file {path} names no files")
    return files


def _require_inputs(paths: Sequence[str]) -> None:
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"input file not found: {p}")


def _load(args):
    from csc_jax.inference.loading import load  # JAX: imported once the inputs are known good

    return load(args.workdir, args.step)


EMBEDDING_FORMATS = (".npy", ".npz")


def _cmd_embed(args) -> None:
    files = list(args.files) + (_read_list(args.list) if args.list else [])
    if not files:
        raise ConfigError("embed: give audio files or --list FILE")
    files = list(dict.fromkeys(files))  # one entry per path, first-seen order
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in EMBEDDING_FORMATS:
        raise ConfigError(
            f"--out {args.out}: unknown embedding file extension {ext or '(none)'!r}; use .npy "
            "(an (N, D) array, rows in input order) or .npz (one (D,) array per input path)"
        )
    _require_inputs(files)
    io_utils.check_output_path(args.out, args.overwrite)
    model = _load(args)
    emb = model.embed(
        files, batch_size=args.batch_size, progress=False if args.no_progress else None
    )
    with io_utils.atomic_output(args.out, args.overwrite) as tmp:
        with open(tmp, "wb") as f:  # a file object: numpy would append the extension to a name
            if ext == ".npy":
                np.save(f, emb)
            else:
                np.savez(f, **dict(zip(files, emb, strict=True)))
    print(
        f"wrote {len(files)} embeddings ({'(N, D) array' if ext == '.npy' else 'path -> (D,)'}, "
        f"D={emb.shape[1]}, step {model.step}) to {args.out}"
    )


def _cmd_score(args) -> None:
    _require_inputs([args.trials])
    if not os.path.isdir(args.audio_root):
        raise FileNotFoundError(f"--audio_root {args.audio_root} is not a directory")
    io_utils.check_output_path(args.out, args.overwrite)
    model = _load(args)
    r = model.verify(
        args.trials,
        args.audio_root,
        scores_out=args.out,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        progress=False if args.no_progress else None,
    )
    print(f"wrote {r['num_trials']} scores to {args.out}")
    if r["eer"] is None:
        print("EER/minDCF not computed: the trial list needs both target and non-target trials")
    else:
        print(
            f"EER {r['eer']:.2f} %  minDCF(p_target={r['p_target']:g}) {r['min_dcf']:.4f}  "
            f"({r['num_trials']} trials, {r['num_target']} target)"
        )


def _cmd_extract(args) -> None:
    _require_inputs([args.mixture, args.enrollment])
    fmt, subtype = audio_io.output_format(args.out)
    io_utils.check_output_path(args.out, args.overwrite)
    mixture_rate = audio_io.audio_rate(args.mixture)
    rate = args.rate or mixture_rate
    if rate < 1000:
        raise ConfigError(f"--rate {rate}: an audio sample rate is at least 1000 Hz")
    # The mixture's own length at its rate (another --rate: what resampling it would give).
    length = audio_io.audio_length(args.mixture, rate)
    model = _load(args)
    y = model.extract(args.mixture, args.enrollment)  # at the model rate
    y = audio_io.resample(y, model.sample_rate, rate, length=length)
    # write_audio is atomic and refuses an existing file itself; the check above already named
    # an existing --out before the model was loaded.
    audio_io.write_audio(args.out, y, rate, overwrite=args.overwrite)
    print(
        f"wrote {args.out} ({y.shape[0]} samples, {rate} Hz, {fmt} {subtype}; model rate "
        f"{model.sample_rate} Hz)"
    )


_COMMANDS = {"embed": _cmd_embed, "score": _cmd_score, "extract": _cmd_extract}


def cli_main(argv: Sequence[str] | None = None, prog: str = "csc-jax", debug: bool = False) -> int:
    """Run one subcommand (embed / score / extract); returns the exit status.

    Args:
      argv: the arguments after the program name (default ``sys.argv[1:]``).
      prog: program name shown in help and usage messages.
      debug: re-raise expected errors with their traceback instead of one ``error:`` line.

    Returns:
      0, or the expected error's exit status (``csc_jax.errors``: 2 invalid input, 1 a
      failure such as an unreadable checkpoint). Bad arguments exit through argparse
      (SystemExit, status 2).
    """
    args = _parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every restore at INFO
    except ImportError:  # pragma: no cover - absl is a dependency
        pass
    return errors.run_main(lambda: _COMMANDS[args.command](args), debug=debug)


def main() -> None:
    """Console-script entry point (``csc-jax``)."""
    debug = errors.debug_requested(sys.argv)  # removes --debug from sys.argv
    sys.exit(cli_main(debug=debug))


if __name__ == "__main__":
    main()

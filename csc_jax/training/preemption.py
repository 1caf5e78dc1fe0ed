"""Preemption: SIGTERM/SIGINT stop a run at the next step boundary, with a checkpoint.

* :class:`StartupSignals`: installed by train.py before JAX is imported; records signals that
  arrive while Python imports JAX and parses the config;
* :class:`StopFlag`: installed by the training loop; takes the start-up record over, so an
  early preemption notice still stops the run at the first step boundary with a checkpoint;
* :func:`stop_agreed`: in a multi-process run every process stops at the same step;
* :class:`Preempted`: raised after the save; exits with ``EXIT_PREEMPTED`` (75).

A second SIGINT (Ctrl-C twice) raises KeyboardInterrupt at once. Imports no JAX at module level
(train.py installs :class:`StartupSignals` before the heavy imports).
"""

from __future__ import annotations

import signal

from csc_jax.errors import EXIT_PREEMPTED

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(SystemExit):
    """Raised after a SIGTERM/SIGINT-triggered save; exits with EXIT_PREEMPTED."""

    def __init__(self, step: int, workdir: str, signum: int | None = None, saved: bool = True):
        super().__init__(EXIT_PREEMPTED)
        self.step = step
        name = signal.Signals(signum).name if signum else "stop request"
        where = (
            f"checkpoint saved in {workdir}"
            if saved
            else f"before training started, nothing new to save in {workdir}"
        )
        self.message = (
            f"preempted at step {step} ({name}): {where}; rerun the same command to resume"
        )


class StartupSignals:
    """Records SIGTERM/SIGINT that arrive while the program starts (before :class:`StopFlag`).

    ``received`` lists the signal numbers; ``previous`` holds the handlers it replaced, which
    :class:`StopFlag` restores when the run ends. A second SIGINT raises KeyboardInterrupt.
    """

    def __init__(self):
        self.received: list[int] = []
        self.previous = {s: signal.signal(s, self) for s in SIGNALS}

    def __call__(self, signum, frame):
        if signum == signal.SIGINT and self.received:
            raise KeyboardInterrupt  # second Ctrl-C during start-up
        self.received.append(signum)


class StopFlag:
    """Context manager recording SIGTERM/SIGINT so the loop can stop at a step boundary.

    Takes over the record of a :class:`StartupSignals` handler it replaces (any callable with
    ``received`` and ``previous``); ``signal`` is the first signal number seen, or None.
    """

    def __init__(self):
        self.signal: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in SIGNALS:
            try:
                old = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be handled here
                continue
            received = getattr(old, "received", None)
            if received is not None:
                if received and self.signal is None:
                    self.signal = received[0]
                old = old.previous.get(sig, signal.SIG_DFL)
            self._old[sig] = old
        return self

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signal is None:
            self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def stop_agreed(local_stop: bool) -> bool:
    """Whether any process was asked to stop (every process must call this at the same step).

    One tiny all-gather per call when several processes take part; none on a single host.
    """
    import jax

    if jax.process_count() == 1:
        return local_stop
    import numpy as np
    from jax.experimental import multihost_utils

    with jax.transfer_guard("allow"):  # a deliberate, tiny host<->device exchange
        flags = multihost_utils.process_allgather(np.int32(local_stop))
    return bool(np.any(flags))

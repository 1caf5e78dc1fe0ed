"""``python tests/_nan_train.py STEP [train.py flags...]``: train.py with a NaN batch at STEP.

A test-side wrapper (the library has no NaN hook): the training iterator's STEP-th batch
(1-based) is multiplied by NaN, then train.py runs as ``__main__`` with the remaining flags.
"""

import os
import runpy
import sys

if __name__ == "__main__":
    tests = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(tests)
    sys.path[:0] = [repo, tests]
    from _train_worker import inject_nan_at_step

    step = int(sys.argv[1])
    inject_nan_at_step(step)
    sys.argv = [os.path.join(repo, "train.py"), *sys.argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")

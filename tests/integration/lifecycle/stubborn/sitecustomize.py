"""Test-only: makes a bot runner ignore SIGTERM and leave a child in its process group.

The `stubborn_worker` fixture puts this directory on the worker's PYTHONPATH; runners it
spawns inherit it and import this module at interpreter start-up. Only processes with a
DEIA_RUNNER_TAG (the runners) and DEIA_TEST_STUBBORN_RUNNER=1 are affected, so the
worker itself runs unchanged. Production code has no hook for this.
"""

import os
import signal
import subprocess

if os.environ.get("DEIA_TEST_STUBBORN_RUNNER") == "1" and os.environ.get("DEIA_RUNNER_TAG"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _install = signal.signal

    def _keep_ignoring(signum, handler):
        # runbot installs its graceful SIGTERM handler later; this runner refuses it.
        if signum == signal.SIGTERM:
            return signal.SIG_IGN
        return _install(signum, handler)

    signal.signal = _keep_ignoring
    # A child in the runner's process group that ignores SIGTERM too (inherited across exec).
    subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, close_fds=True)

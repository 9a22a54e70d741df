"""The adapter for uvicorn's Server: what the runner relies on that uvicorn does not document.

- `Server.handle_exit(sig, frame)` is what uvicorn installs for SIGTERM and SIGINT while it
  serves (`capture_signals`); overriding it is how the runner hears the signal first.
- Setting `should_exit` makes `serve()` stop the same graceful way a signal does.
- Once done, uvicorn re-raises the signal that stopped it, with the handlers it found
  installed: `ignore_reraised_signals` puts no-op handlers there so the process exits 0.

tests/adapters/test_uvicorn.py pins each against the installed uvicorn.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import uvicorn


class Server(uvicorn.Server):
    """uvicorn's server, calling `on_exit_signal(sig)` before its own handling of SIGTERM/SIGINT."""

    def __init__(self, config: uvicorn.Config, on_exit_signal: Callable[[int], None]) -> None:
        super().__init__(config)
        self.on_exit_signal = on_exit_signal

    def handle_exit(self, sig: int, frame: object) -> None:
        self.on_exit_signal(sig)
        super().handle_exit(sig, frame)

    def stop(self) -> None:
        """Stop serving as gracefully as on SIGTERM."""
        self.should_exit = True


def ignore_reraised_signals() -> None:
    """No-op handlers for the signals uvicorn re-raises once it has stopped on one."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)

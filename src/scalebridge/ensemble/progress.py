"""The progress bar of long ensembles (rich, on stderr).

Whether to show it is decided from the timing of the chunks, not guessed in advance: after each
finished chunk the time still needed is projected from the latest chunk's rate, and the bar
appears once the whole ensemble is projected to take longer than :data:`SHOW_AFTER_S` (and at
least one more second is left).  Short ensembles never show it.  In the automatic mode it is shown
only when stderr is a terminal; ``progress=True`` forces it (also on a file or a pipe), ``False``
turns it off.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["SHOW_AFTER_S", "ProgressBar"]

SHOW_AFTER_S = 3.0
MIN_REMAINING_S = 1.0


class ProgressBar:
    """A bar of finished runs out of ``total``, created only once it is worth showing."""

    def __init__(
        self, mode: bool | None, total: int, *, stream: TextIO | None = None, label: str = "runs"
    ):
        self.total = total
        self.label = label
        self._stream = stream
        if mode is None:
            stream_ = stream if stream is not None else sys.stderr
            isatty = getattr(stream_, "isatty", None)
            mode = bool(isatty()) if isatty is not None else False
        self.allowed = bool(mode) and total > 1
        self._forced = mode
        self._progress: Any = None
        self._task: Any = None
        self.shown = False

    def update(self, done: int, elapsed: float, remaining: float) -> None:
        """``done`` runs finished after ``elapsed`` seconds, ``remaining`` seconds projected."""
        if not self.allowed:
            return
        if not self.shown:
            if elapsed + remaining < SHOW_AFTER_S or remaining < MIN_REMAINING_S:
                return
            self._start(done)
        self._progress.update(self._task, completed=done)

    def _start(self, done: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        stream = self._stream if self._stream is not None else sys.stderr
        console = Console(file=stream, stderr=stream is sys.stderr)
        self._progress = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("runs", total=self.total, completed=done)
        self.shown = True

    def close(self, done: int) -> None:
        if self.shown:
            self._progress.update(self._task, completed=done)
            self._progress.stop()

"""chartevents in a process of its own: the largest table, written in parallel with the rest.

The worker rebuilds each chunk from the seed (chunks.py), writes its chartevents rows, and
reports progress and the final row count through a queue.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import traceback
from pathlib import Path
from typing import Any

from crypten_fl.mimic_etl.synth.chunks import build_chunk, chart_rows
from crypten_fl.mimic_etl.synth.schema import columns
from crypten_fl.mimic_etl.synth.writer import CsvGzWriter


def run(path: Path, seed: int, version: str, sizes: list[int], messages: Any) -> None:
    """Worker entry point: messages are ('chunk', k), then ('done', rows) or ('error', text)."""
    try:
        writer = CsvGzWriter(path, columns("chartevents", version))
        try:
            for k, n_icu in enumerate(sizes):
                writer.write(chart_rows(build_chunk(seed, k, n_icu, version)))
                messages.put(("chunk", k))
        except BaseException:
            writer.abort()
            raise
        writer.close()
        messages.put(("done", writer.rows))
    except BaseException:
        messages.put(("error", traceback.format_exc(limit=5)))


class ChartWorker:
    """Starts :func:`run` in a spawned process and follows its progress."""

    def __init__(self, path: Path, seed: int, version: str, sizes: list[int]) -> None:
        ctx = mp.get_context("spawn")
        self._messages = ctx.Queue()
        self._process = ctx.Process(target=run, args=(path, seed, version, sizes,
                                                      self._messages), daemon=True)
        self._process.start()
        self.chunks_done = 0
        self.rows: int | None = None

    def poll(self, wait: float = 0.0) -> None:
        """Read pending messages, waiting up to ``wait`` seconds for the first one."""
        alive = self._process.is_alive()
        while True:
            try:
                message = (self._messages.get(timeout=wait) if wait > 0
                           else self._messages.get_nowait())
            except queue_mod.Empty:
                break
            wait = 0.0
            kind, value = message
            if kind == "chunk":
                self.chunks_done = value + 1
            elif kind == "done":
                self.rows = value
            else:
                raise RuntimeError(f"chartevents worker failed:\n{value}")
        if not alive and self.rows is None:
            raise RuntimeError("chartevents worker exited unexpectedly")

    @property
    def finished(self) -> bool:
        """True once the worker reported its row count."""
        return self.rows is not None

    def stop(self) -> None:
        """End the worker (if still running) and reap it."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()

"""Step bookkeeping that makes a dataset run resumable.

Each folder that a job writes (a tomogram folder, or the dataset folder for
dataset-level steps) holds a ``manifest.json``: for every finished step, a
hash of everything that determines its outputs (settings, seed, the hashes of
the steps it reads from) and the list of its output files with their sizes. A
step is skipped when its hash matches and its outputs exist with the recorded
sizes (a truncated or replaced file is redone); otherwise it is redone, and since
downstream hashes include upstream hashes, everything after it is redone too.

Outputs are written atomically before the manifest entry, so a run killed at
any moment either has a step completely recorded or redoes it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faket.errors import FaketError
from faket.io.atomic import write_text_atomic
from faket.pipeline.resources import measure_resources

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def settings_hash(*parts: Any) -> str:
    """A short, stable hash of JSON-serialisable ``parts`` (sorted keys)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class StepRecord:
    """What one step did: its name, folder, whether it ran, how long it took (s), and
    details such as the weights it used."""

    name: str
    folder: str
    ran: bool
    seconds: float
    outputs: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Manifest:
    """The ``manifest.json`` of one folder; steps are recorded as they finish."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME
        self.steps: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self.steps = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            content = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise FaketError(
                f"{self.path} is unreadable ({error}); delete it to redo that folder's steps"
            ) from error
        if content.get("version") != MANIFEST_VERSION:
            raise FaketError(
                f"{self.path} was written by another faket version; delete it to redo the steps"
            )
        return dict(content.get("steps", {}))

    def is_done(self, name: str, digest: str, outputs: Sequence[str]) -> bool:
        """True when ``name`` finished with the same ``digest`` and its outputs still exist
        with the sizes recorded then (entries from before sizes were recorded: exist)."""
        entry = self.steps.get(name)
        if entry is None or entry.get("hash") != digest:
            return False
        sizes = entry.get("sizes", {})
        for output in outputs:
            path = self.folder / output
            if not path.is_file() or sizes.get(output, path.stat().st_size) != path.stat().st_size:
                return False
        return True

    def digest(self, name: str) -> str:
        """The recorded hash of a finished step (fails if it has not run)."""
        if name not in self.steps:
            raise FaketError(f"step {name!r} has not run in {self.folder}")
        return self.steps[name]["hash"]

    def record(
        self, name: str, digest: str, outputs: Sequence[str], seconds: float, **details: Any
    ) -> None:
        """Record a finished step and rewrite the manifest atomically; ``details`` (peak
        memory, device, ``info`` such as the weights it used) are stored in its entry."""
        self.steps[name] = {
            "hash": digest,
            "outputs": list(outputs),
            "sizes": {o: (self.folder / o).stat().st_size for o in outputs},
            "seconds": round(seconds, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **details,
        }
        payload = {"version": MANIFEST_VERSION, "steps": self.steps}
        write_text_atomic(self.path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def run_step(
    manifest: Manifest,
    name: str,
    digest: str,
    outputs: Sequence[str],
    compute: Callable[[], None],
    *,
    device: str | None = None,
    info: dict[str, Any] | None = None,
) -> StepRecord:
    """Run ``compute`` unless ``manifest`` says ``name`` is already done with ``digest``.

    ``compute`` must write every file in ``outputs`` (paths relative to the
    manifest's folder) atomically. The manifest entry records the wall time, the peak
    memory and the device (:func:`faket.pipeline.resources.measure_resources`) and
    ``info`` (JSON facts about how the outputs were made, e.g. the VGG weights used and
    the thread count), which the returned record carries as ``details``.
    """
    details = dict(info or {})
    if manifest.is_done(name, digest, outputs):
        return StepRecord(name, str(manifest.folder), False, 0.0, list(outputs), details)
    start = time.perf_counter()
    with measure_resources(device) as measured:
        compute()
    seconds = time.perf_counter() - start
    missing = [output for output in outputs if not (manifest.folder / output).exists()]
    if missing:  # a programming error, not a user error
        raise RuntimeError(f"step {name} did not write {missing}")
    if details:
        measured["info"] = details
    manifest.record(name, digest, outputs, seconds, **measured)
    return StepRecord(name, str(manifest.folder), True, seconds, list(outputs), details)

"""The human-request detector read back from the copy pickled the last time it was built.

Building it from the phrase files takes seconds (8 on a 2-core AMD EPYC in December 2026);
reading the pickled copy back takes under one. The worker and the what-if both start through
`load_detector`, so a restart pays the build only when the code or a phrase file changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import pickle
import sys
from pathlib import Path

from handoff.triggers.human_request import DATA_DIR, HumanRequestDetector

__all__ = ["DETECTOR_CACHE_ENV", "load_detector"]

DETECTOR_CACHE_ENV = "HANDOFF_DETECTOR_CACHE_DIR"  # a folder, or "off"
_KEEP_DETECTORS = 4  # built detectors kept in the folder (worktrees and versions side by side)


def load_detector(extra_dirs: list[Path]) -> HumanRequestDetector:
    """`HumanRequestDetector.load`, read back from the copy pickled the last time it was built
    from the same pattern files by the same code: building takes seconds, reading a tenth."""
    folder = _detector_folder()
    if folder is None:
        return HumanRequestDetector.load(extra_dirs)
    path = folder / f"human-request-{_detector_key(extra_dirs)}.pickle"
    with contextlib.suppress(Exception):  # missing, half-written or stale: build it again
        with path.open("rb") as file:
            found = pickle.load(file)  # a file this user's own runs wrote
        if isinstance(found, HumanRequestDetector):
            return found
    detector = HumanRequestDetector.load(extra_dirs)
    with contextlib.suppress(Exception):  # a copy that cannot be written only costs time
        folder.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{os.getpid()}.part")
        with part.open("wb") as file:
            pickle.dump(detector, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(part, path)
        built = sorted(folder.glob("human-request-*.pickle"), key=lambda p: p.stat().st_mtime)
        for old in built[:-_KEEP_DETECTORS]:
            old.unlink(missing_ok=True)
    return detector


def _detector_folder() -> Path | None:
    given = os.environ.get(DETECTOR_CACHE_ENV)
    if given == "off":
        return None
    return Path(given) if given else Path.home() / ".cache" / "handoff" / "detector"


def _detector_key(extra_dirs: list[Path]) -> str:
    """What the built detector depends on: the Python, the detector's code, its data files
    (shipped, and the operator's patterns by name, as a file's name is its language)."""
    digest = hashlib.sha256(sys.version.encode())
    sources = sorted(Path(inspect.getfile(HumanRequestDetector)).parent.glob("*.py"))
    patterns = sorted(p for p in DATA_DIR.parent.rglob("*") if p.is_file())
    for folder in extra_dirs:
        patterns += sorted(Path(folder).glob("*.txt"))
    for file in (*sources, *patterns):
        digest.update(f"\0{file.name}\0".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:24]

"""Print the sentences of this set that also appear in a seen or training file (see README.md).

Only this set's own sentences are printed, never a line of the other files, so running it does
not show the author what the detector was built from (`sentence_collisions`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from handoff.triggers.evaluate import check_overlap_main, held_out_compared_files, sentence_collisions

HERE = Path(__file__).resolve().parent
# The public data lives outside the repository on the team's machine; a missing folder is skipped.
DEFAULT_PUBLIC = Path("/work/shared/data/human-request")
EARLIER_SETS = ("heldout", "heldout2", "heldout3", "heldout4", "heldout5", "heldout6",
                "heldout7", "heldout8", "heldout9", "heldout10", "heldout11", "heldout12",
                "heldout13", "heldout14", "heldout15", "heldout16")


def collisions(public: Path = DEFAULT_PUBLIC) -> list[str]:
    """This set's lines whose text is also in a compared file, sorted."""
    return sentence_collisions(HERE, held_out_compared_files(HERE, EARLIER_SETS, public))[0]


if __name__ == "__main__":
    raise SystemExit(check_overlap_main(
        HERE, EARLIER_SETS, Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PUBLIC))

"""Print the notebooks longest-running first, by the run recorded in their committed outputs.

``make test`` hands the notebooks to two nbval workers in this order: the longest start
first, so that no long chapter is left running alone at the end (longest-processing-time
scheduling). A notebook without recorded timings counts as 0 s and comes last.
"""
import json
import sys
from datetime import datetime
from pathlib import Path


def recorded_seconds(path: Path) -> float:
    """Seconds from the first cell's start to the last cell's end in the stored execution metadata."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return 0.0
    stamps = [datetime.fromisoformat(cell["metadata"]["execution"][key].replace("Z", "+00:00"))
              for cell in cells
              for key in ("iopub.execute_input", "shell.execute_reply")
              if key in cell.get("metadata", {}).get("execution", {})]
    return (max(stamps) - min(stamps)).total_seconds() if stamps else 0.0


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else Path("notebooks")
    notebooks = sorted(folder.glob("*.ipynb"))
    print(" ".join(str(p) for p in sorted(notebooks, key=recorded_seconds, reverse=True)))


if __name__ == "__main__":
    main(sys.argv[1:])

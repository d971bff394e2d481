"""Print the size of functions (lines, decorators excluded) under the given roots.

Used to keep functions small while the code is reshaped (issue 17 asks for a
median of at most 9 and a 90th percentile of at most 26 lines over
``federation/``, ``peers/`` and ``crypto/``). ``--top N`` lists the largest.

    python scripts/function_sizes.py federation peers crypto --top 10
"""

from __future__ import annotations

import argparse
import ast
import statistics
from pathlib import Path


def sizes(roots: list[str]) -> list[tuple[int, str]]:
    """(lines, "path:line name") of every function and method under ``roots``."""
    found: list[tuple[int, str]] = []
    for root in roots:
        for path in sorted(Path(root).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    found.append((lines, f"{path}:{node.lineno} {node.name}"))
    return found


def main() -> None:
    """Print count, median, p90 and (optionally) the largest functions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    found = sizes(args.roots)
    lengths = sorted(n for n, _ in found)
    p90 = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))]
    print(f"functions {len(lengths)}  median {statistics.median(lengths):g}  p90 {p90}")
    for lines, where in sorted(found, reverse=True)[: args.top]:
        print(f"{lines:5d}  {where}")


if __name__ == "__main__":
    main()

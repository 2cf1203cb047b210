"""Summarise a profile: self and inclusive time per frame.

``python -m bench.stacks FILE [--top N] [--grep TEXT]``: FILE is a py-spy ``--format raw``
(collapsed stacks) file, or a V8 ``.cpuprofile`` (``node --cpu-prof``, the Node baseline
under ``--profile``; idle time left out).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


def collapsed(path: Path) -> Iterator[tuple[list[str], int]]:
    """(frames root first, weight) of each stack in a py-spy raw file or a V8 cpuprofile."""
    if path.suffix != ".cpuprofile":
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if stack:
                yield stack.split(";"), int(count_text)
        return
    profile = json.loads(path.read_text())
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {child: n["id"] for n in profile["nodes"] for child in n.get("children", [])}
    weight: Counter[int] = Counter()
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        weight[sample] += delta
    for node_id, micros in weight.items():
        frames = []
        current: int | None = node_id
        while current is not None:
            call = nodes[current]["callFrame"]
            name = call["functionName"] or "(anonymous)"
            frames.append(f"{name} ({call['url'].rsplit('/', 1)[-1]}:{call['lineNumber'] + 1})")
            current = parent.get(current)
        frames.reverse()
        if not frames[-1].startswith("(idle)"):
            yield frames, micros


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--grep", default="")
    args = parser.parse_args()
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for frames, count in collapsed(args.file):
        if args.grep and not any(args.grep in frame for frame in frames):
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    print(f"{total} samples")
    print("-- self --")
    for frame, count in own.most_common(args.top):
        print(f"{100 * count / total:5.1f}%  {frame}")
    print("-- inclusive --")
    for frame, count in incl.most_common(args.top):
        print(f"{100 * count / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()

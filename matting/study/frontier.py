"""The speed-quality frontier of a study: latency against test SAD per arm, as a table and a plot.

    python tools/study.py frontier runs/efficiency --latency experiments/efficiency/latency.json
                             [--size 512] [--out experiments/efficiency]

Joins the finished runs of ``tools/study.py run`` (test metrics, mean +- sample std over seeds, read
by ``tools/study.py collect``'s loader) with the latency ratios of ``tools/benchmark.py frontier``
(each arm against the reference arm, interleaved, in ``matting predict``'s path) and the GFLOP of
each arm's inference pass at 512 px (``tools/benchmark.py flops`` on the run's saved config). An arm
is on the frontier when no other arm is both faster (lower latency ratio at ``--size``) and better
(lower mean test SAD). Writes ``frontier.md`` and ``frontier.png`` into ``--out`` (default: the
study folder recorded in the runs). Arms without a latency (the colour threshold) are listed, not
plotted.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np

from matting.metrics import METRIC_HEADERS

from matting.bench.flops import build_net, count
from matting.study.results import REPO, CollectError, cell, load_runs, nice_ceiling, summarise

QUALITY = ("sad", "mse", "grad")  # the test metrics of the table, each in the scale of METRIC_HEADERS


def arm_cost(result: dict, size: int = 512) -> dict:
    """GFLOP (total, encoder, heads) of one run's network at ``size`` px, built from its saved config."""
    net = build_net(["-c", str(Path(result["dir"]) / "config.yaml")])
    counted = count(net, size)
    encoder = counted["by_part"].get("encoder", 0)
    return {"gflop": counted["flops"] / 1e9, "encoder_gflop": encoder / 1e9,
            "heads_gflop": (counted["flops"] - encoder) / 1e9}


def on_frontier(points: dict[str, tuple[float, float]]) -> set[str]:
    """Arms not dominated: no other arm has a lower-or-equal ratio and SAD, one of them strictly lower."""
    front = set()
    for arm, (ratio, sad) in points.items():
        if not any((r <= ratio and s <= sad and (r < ratio or s < sad)) for other, (r, s) in points.items() if other != arm):
            front.add(arm)
    return front


def frontier_rows(rows: list[dict], latency: dict, size: int) -> list[dict]:
    """Rows of :func:`collect_results.summarise` with ``ratio`` / ``ms`` per latency size, GFLOP and ``front``."""
    sizes = sorted(latency["results"], key=int)
    if str(size) not in sizes:
        raise CollectError(f"the latency file has sizes {sizes}, not --size {size}")
    out = []
    for row in rows:
        timed = {s: latency["results"][s].get(row["arm"]) for s in sizes}
        row = {**row, "latency": timed if all(timed.values()) else None}
        if row["latency"] is not None:
            row.update(arm_cost(row["results"][0]))
        out.append(row)
    points = {r["arm"]: (r["latency"][str(size)]["ratio"], r["sad"][0]) for r in out if r["latency"]}
    front = on_frontier(points)
    for r in out:
        r["front"] = r["arm"] in front
    out.sort(key=lambda r: (r["latency"] is None, r["latency"][str(size)]["ratio"] if r["latency"] else 0))
    return out


def markdown(rows: list[dict], latency: dict, size: int, command: str) -> str:
    sizes = sorted(latency["results"], key=int)
    head = ("| arm | on frontier | GFLOP at 512 | heads / encoder | "
            + " | ".join(f"x reference at {s} | ms at {s}" for s in sizes)
            + "".join(f" | test {METRIC_HEADERS[m]}" for m in QUALITY) + " | seeds |")
    lines = [
        "# Speed-quality frontier", "",
        f"Made by `{command}` from the runs of `tools/study.py run` and the latency file "
        f"`{latency.get('command', '?')}` ({latency.get('machine', '?')}, load average "
        f"{latency.get('load_average_before', float('nan')):.2f} before, {latency.get('rounds', '?')} rounds, "
        f"processes: {latency.get('processes', 'one')}).", "",
        f"Latency is a ratio to the reference arm measured in the same process; test metrics are mean +- sample "
        f"std over seeds on the synthetic test split. An arm is on the frontier when no arm is both faster at "
        f"{size} px and lower in mean test SAD. Sorted by latency.", "",
        head, "|---|:-:|---:|---:|" + "---:|---:|" * len(sizes) + "---:|---:|---:|---|",
    ]
    for r in rows:
        if r["latency"] is None:
            continue
        cells = " | ".join(f"{r['latency'][s]['ratio']:.3f} | {r['latency'][s]['ms']:.1f}" for s in sizes)
        ratio = r["heads_gflop"] / r["encoder_gflop"] if r["encoder_gflop"] else float("nan")
        quality = " | ".join(cell(m, r[m]) for m in QUALITY)
        lines.append(f"| {'**' + r['arm'] + '**' if r['front'] else r['arm']} | {'yes' if r['front'] else ''} | "
                     f"{r['gflop']:.2f} | {ratio:.2f} | {cells} | {quality} | {len(r['seeds'])} |")
    untimed = [r for r in rows if r["latency"] is None]
    if untimed:
        lines += ["", "Not timed (no network, or not in the latency file): "
                  + "; ".join(f"{r['arm']} (test {METRIC_HEADERS['sad']} {cell('sad', r['sad'])})" for r in untimed) + "."]
    lines += ["", "![latency against test SAD](frontier.png)", ""]
    return "\n".join(lines)


def plot(rows: list[dict], size: int, path: Path) -> None:
    """Scatter of latency ratio (x) against mean test SAD (y, +- std whisker); frontier arms joined."""
    from matting.io.images import write_png

    timed = [r for r in rows if r["latency"] is not None]
    font, width, height, left, top, right, bottom = cv2.FONT_HERSHEY_SIMPLEX, 900, 620, 80, 50, 40, 70
    img = np.full((height, width, 3), 255, np.uint8)
    xmax = nice_ceiling(max(r["latency"][str(size)]["ratio"] for r in timed) * 1.05) if timed else 1.0
    ymax = nice_ceiling(max(r["sad"][0] + np.nan_to_num(r["sad"][1]) for r in timed) * 1.05) if timed else 1.0
    pw, ph = width - left - right, height - top - bottom

    def xy(ratio: float, sad: float) -> tuple[int, int]:
        return int(left + ratio / xmax * pw), int(top + ph - sad / ymax * ph)

    cv2.putText(img, f"Latency at {size} px (x reference, same process) against test SAD (mean +- std over seeds)",
                (10, 24), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
    for t in np.linspace(0, xmax, 6):
        x, _ = xy(t, 0)
        cv2.line(img, (x, top + ph), (x, top + ph + 4), (0, 0, 0), 1)
        cv2.putText(img, f"{t:g}", (x - 10, top + ph + 20), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for t in np.linspace(0, ymax, 6):
        _, y = xy(0, t)
        cv2.line(img, (left - 4, y), (left, y), (0, 0, 0), 1)
        cv2.putText(img, f"{t:g}", (left - 45, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "x reference latency", (left + pw // 2 - 70, height - 20), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    if 0.2 <= xmax:  # the target of the study
        x, _ = xy(0.2, 0)
        cv2.line(img, (x, top), (x, top + ph), (150, 150, 150), 1)
        cv2.putText(img, "0.2x", (x + 3, top + 14), font, 0.4, (120, 120, 120), 1, cv2.LINE_AA)
    front = sorted((r for r in timed if r["front"]), key=lambda r: r["latency"][str(size)]["ratio"])
    for a, b in zip(front, front[1:]):
        cv2.line(img, xy(a["latency"][str(size)]["ratio"], a["sad"][0]), xy(b["latency"][str(size)]["ratio"], b["sad"][0]),
                 (180, 119, 31), 1, cv2.LINE_AA)
    for r in timed:
        ratio, (mean, std) = r["latency"][str(size)]["ratio"], r["sad"]
        x, y = xy(ratio, mean)
        if not np.isnan(std):
            cv2.line(img, xy(ratio, mean - std), xy(ratio, mean + std), (0, 0, 0), 1)
        cv2.circle(img, (x, y), 5, (180, 119, 31) if r["front"] else (150, 150, 150), -1, cv2.LINE_AA)
        cv2.putText(img, r["arm"], (x + 7, y - 5), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    write_png(path, cv2.cvtColor(img, cv2.COLOR_BGR2RGB), overwrite=True)


def main(argv: list[str] | None = None) -> int:
    from matting.io.files import atomic_write

    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python tools/study.py frontier", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="output folder of tools/study.py run")
    p.add_argument("--latency", type=Path, required=True, help="JSON written by tools/benchmark.py frontier --out")
    p.add_argument("--size", type=int, default=512, help="the latency size the frontier is drawn at (default 512)")
    p.add_argument("--out", type=Path, help="where frontier.md and frontier.png go (default: the study folder)")
    args = p.parse_args(argv)
    try:
        if not args.latency.is_file():
            raise CollectError(f"--latency {args.latency}: no such file")
        try:
            latency = json.loads(args.latency.read_text())
            latency["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CollectError(f"--latency {args.latency}: not a tools/benchmark.py frontier result ({exc})") from None
        rows = frontier_rows(summarise(load_runs(args.runs)), latency, args.size)
        if args.out is None:
            studies = {r["study"] for row in rows for r in row["results"]}
            if len(studies) != 1:
                raise CollectError(f"runs come from several studies {sorted(studies)}; pass --out")
            study = Path(next(iter(studies)))
            args.out = study if study.is_absolute() else REPO / study
        args.out.mkdir(parents=True, exist_ok=True)
        command = shlex.join(["python", "tools/study.py", "frontier", *argv])
        atomic_write(args.out / "frontier.md", markdown(rows, latency, args.size, command))
        plot(rows, args.size, args.out / "frontier.png")
    except CollectError as exc:
        print(f"frontier: error: {exc}", file=sys.stderr)
        return 2
    print(args.out / "frontier.md")
    return 0


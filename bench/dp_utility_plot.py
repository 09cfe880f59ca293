"""One figure from several bench/dp_utility.py outputs: utility and attack AUROC against ε.

    .venv/bin/python bench/dp_utility_plot.py OUT.png RUN.json [RUN.json ...] \
        [--no-dp STRATEGY=AUROC ...] [--title TEXT]

Each RUN.json is a ``bench/out/dp_utility_<tag>.json``; its rows are grouped by strategy (a run
with ``dp_noise=distributed`` or ``dealer`` among its overrides is labelled so). Left: task
macro-AUROC against ε per strategy, with each strategy's no-DP AUROC (``--no-dp``, or a no-DP
row of the inputs) as a dotted line. Right: the loss attack's AUROC of every audited run, with
chance (0.5). docs/privacy.md shows the figures of the 12k federation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _series(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Rows by label (strategy, and the noise mode when it is not local)."""
    series: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        data = json.loads(path.read_text())
        noise = (data.get("overrides") or {}).get("dp_noise") or "local"
        for row in data["rows"]:
            label = row["strategy"] + ("" if noise == "local" else f" ({noise} noise)")
            series.setdefault(label, []).append(row)
    return series


def main() -> None:
    """Parse the options and write the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--no-dp", action="append", default=[], metavar="STRATEGY=AUROC")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    plain = {k: float(v) for k, v in (item.split("=", 1) for item in args.no_dp)}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    series = _series(args.runs)
    fig, (utility, attack) = plt.subplots(1, 2, figsize=(10, 4))
    drawn: set[str] = set()
    for label, rows in series.items():
        private = sorted((r for r in rows if r["epsilon_target"]),
                         key=lambda r: r["epsilon_target"])
        strategy = rows[0]["strategy"]
        baseline = plain.get(strategy, next((r["macro_auroc"] for r in rows
                                             if r["epsilon_target"] is None), None))
        line = utility.plot([r["epsilon_target"] for r in private],
                            [r["macro_auroc"] for r in private], marker="o", label=label)[0]
        if baseline is not None and strategy not in drawn:  # one line per strategy
            drawn.add(strategy)
            utility.axhline(baseline, color=line.get_color(), linestyle=":", linewidth=1)
        audited = [r for r in private if r.get("attack_auroc") is not None]
        attack.plot([r["epsilon_target"] for r in audited], [r["attack_auroc"] for r in audited],
                    marker="s", color=line.get_color(), label=label)
    attack.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
    epsilons = sorted({r["epsilon_target"] for rows in series.values()
                       for r in rows if r["epsilon_target"]})
    for ax in (utility, attack):
        ax.set_xscale("log")
        ax.set_xticks(epsilons, [f"{e:g}" for e in epsilons])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("ε per hospital")
    utility.set_ylabel("test macro-AUROC (dotted: no DP)")
    attack.set_ylabel("membership attack AUROC (loss attack)")
    attack.set_ylim(0.45, 0.65)
    utility.legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

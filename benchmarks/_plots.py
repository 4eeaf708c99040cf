"""PNG plots of the weak-scaling study (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write(scaling: dict[str, Any], out_dir: Path) -> list[Path]:
    """scaling_noop.png and scaling_sleep.png; nothing when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    series = {"Pool": scaling.get("pool", {}), **scaling.get("modes", {})}
    written = []
    for name, metric, ylabel, title in (
        (
            "scaling_noop.png",
            ("noop", "tasks_per_s"),
            "no-op tasks/s",
            "No-op throughput, tasks in proportion",
        ),
        (
            "scaling_sleep.png",
            ("sleep", "efficiency"),
            "efficiency (ideal / wall)",
            "Sleep tasks, weak-scaling efficiency",
        ),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for label, points in series.items():
            xs, ys = [], []
            for p, point in sorted(points.items(), key=lambda item: int(item[0])):
                if metric[0] in point:
                    xs.append(int(p))
                    ys.append(point[metric[0]][metric[1]])
            if xs:
                ax.plot(xs, ys, marker="o", label=label, linestyle="--" if label == "Pool" else "-")
        ax.set_xscale("log", base=2)
        ax.set_xticks(scaling.get("processes", []), [str(p) for p in scaling.get("processes", [])])
        ax.set_xlabel("worker processes")
        ax.set_ylabel(ylabel)
        if metric[1] == "tasks_per_s":
            ax.set_yscale("log")
        else:
            ax.axhline(1.0, color="grey", linewidth=0.8)
            ax.set_ylim(0, 1.1)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written

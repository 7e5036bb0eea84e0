"""Figures, saved to PNG files (shown on screen only when asked).

Every figure is a grid of panels. A panel is a dict:

- `title`, `xlabel`, `ylabel`, `xlim`, `ylim`, `xscale`/`yscale`, `hide_ticks` (all optional);
- `lines`: a list of `Line`s, and/or
- `hist`: `(values, bins, range)` for a histogram, and/or
- `bars`: `(labels, heights)` for a bar chart (labels under the bars, turned), and/or
- `hlines`: `[(y, label)]` dotted reference lines, and/or
- `contour`: `(X, Y, Z)` for a contour plot under the lines;
- `note`: a short text in the panel's top right corner.

A figure can carry a `suptitle` and, for a grid, one `xlabel`/`ylabel` for all its panels.
"""

import dataclasses
import pathlib

import matplotlib.pyplot as plt

MARKERS = ("o", "x", "s", "D", "^", "v", "*", "+")


@dataclasses.dataclass
class Line:
    x: object
    y: object
    label: str | None = None
    style: str = "-"
    marker: str | None = None
    markevery: int | None = None
    color: str | None = None


def plot_panels(
    panels,
    path,
    *,
    ncols=None,
    suptitle=None,
    xlabel=None,
    ylabel=None,
    panel_size=(4.0, 3.2),
    show=False,
    legend_panel=0,
):
    """Draw `panels` on a grid of `ncols` columns and save the figure to `path` (PNG)."""
    count = len(panels)
    ncols = ncols or count
    nrows = -(-count // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False)
    for ax, panel in zip(axes.ravel(), panels):
        _draw(ax, panel)
        if (legend_panel is None or panel is panels[legend_panel]) and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    for ax in axes.ravel()[count:]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    if xlabel:
        fig.supxlabel(xlabel)
    if ylabel:
        fig.supylabel(ylabel)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    if show:
        plt.show()
    plt.close(fig)
    return path


def _draw(ax, panel):
    if "contour" in panel:
        X, Y, Z = panel["contour"]
        ax.contour(X, Y, Z, levels=panel.get("levels", 20))
        ax.plot(0, 0, "+", color="black")
    if "hist" in panel:
        values, bins, value_range = panel["hist"]
        ax.hist(values, bins=bins, range=value_range)
    if "bars" in panel:
        labels, heights = panel["bars"]
        ax.bar(range(len(heights)), heights, color="C0")
        ax.set_xticks(range(len(heights)), labels, rotation=35, ha="right", fontsize="small")
    for y, label in panel.get("hlines", []):
        ax.axhline(y, color="gray", linestyle=":", label=label)
    for index, line in enumerate(panel.get("lines", [])):
        extra = {"marker": line.marker, "markevery": line.markevery} if line.marker else {}
        ax.plot(line.x, line.y, line.style, label=line.label, color=line.color or f"C{index % 10}", **extra)
    for key in ("title", "xlabel", "ylabel"):
        if panel.get(key):
            getattr(ax, f"set_{key}")(panel[key])
    if panel.get("ylim") is not None:
        ax.set_ylim(*panel["ylim"])
    if panel.get("xlim") is not None:
        ax.set_xlim(*panel["xlim"])
    if panel.get("xscale"):
        ax.set_xscale(panel["xscale"])
    if panel.get("yscale"):
        ax.set_yscale(panel["yscale"])
    if panel.get("hide_ticks"):
        ax.set_xticks([])
        ax.set_yticks([])
    if panel.get("note"):
        ax.text(0.97, 0.95, panel["note"], transform=ax.transAxes, ha="right", va="top", fontsize="small")


def loss_panel(histories, *, title="loss", ylim=(0, 1), smooth=True):
    """A panel of each variant's per-iteration loss, smoothed like the reference."""
    from coursekit.results import smooth_curve

    lines = []
    for index, (name, history) in enumerate(histories.items()):
        losses = smooth_curve(history.losses) if smooth else history.losses
        x = range(1, len(losses) + 1)
        lines.append(
            Line(x, losses, label=name, marker=MARKERS[index % len(MARKERS)], markevery=max(len(losses) // 20, 1))
        )
    return {"title": title, "lines": lines, "xlabel": "iterations", "ylabel": "loss", "ylim": ylim}


def accuracy_panel(histories, *, title="accuracy", metrics=("train_accuracy", "test_accuracy"), ylim=(0, 1.0)):
    """A panel of accuracy per epoch: the first metric solid, the second dashed, per variant."""
    lines = []
    for index, (name, history) in enumerate(histories.items()):
        for metric, style in zip(metrics, ("-", "--")):
            points = history.metrics.get(metric, [])
            if points:
                steps, values = zip(*points)
                lines.append(
                    Line(
                        steps, values, label=f"{name} {metric.replace('_accuracy', '')}", style=style, color=f"C{index}"
                    )
                )
    return {"title": title, "lines": lines, "xlabel": "epochs", "ylabel": "accuracy", "ylim": ylim}

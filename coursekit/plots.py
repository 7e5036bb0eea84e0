"""Figures, saved to PNG files (shown on screen only when asked).

Every figure is a grid of panels. A panel is a dict:

- `title`, `xlabel`, `ylabel`, `ylim`, `xscale`/`yscale` (all optional);
- `lines`: a list of `Line`s, and/or
- `hist`: `(values, bins, range)` for a histogram, and/or
- `contour`: `(X, Y, Z)` for a contour plot under the lines.
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


def plot_panels(panels, path, *, ncols=None, suptitle=None, panel_size=(4.0, 3.2), show=False, legend_panel=0):
    """Draw `panels` on a grid of `ncols` columns and save the figure to `path` (PNG)."""
    count = len(panels)
    ncols = ncols or count
    nrows = -(-count // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False)
    for ax, panel in zip(axes.ravel(), panels):
        _draw(ax, panel)
        if (
            panel.get("lines")
            and any(line.label for line in panel["lines"])
            and (legend_panel is None or panel is panels[legend_panel])
        ):
            ax.legend(fontsize="small")
    for ax in axes.ravel()[count:]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
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
    for index, line in enumerate(panel.get("lines", [])):
        ax.plot(
            line.x,
            line.y,
            line.style,
            label=line.label,
            marker=line.marker,
            markevery=line.markevery,
            color=line.color or f"C{index % 10}",
        )
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

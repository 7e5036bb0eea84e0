"""Figures, saved to PNG files (shown on screen only when asked).

Every figure is a grid of panels. A panel is a dict:

- `title`, `xlabel`, `ylabel`, `xlim`, `ylim`, `xscale`/`yscale`, `hide_ticks` (all optional);
- `lines`: a list of `Line`s (a line's `band`, when given, is shaded around it: the spread of
  the curve over seeds), and/or
- `hist`: `(values, bins, range)` for a histogram, and/or
- `bars`: `(labels, heights)` for a bar chart (labels under the bars, turned), and/or
- `hlines`: `[(y, label)]` dotted reference lines (`(y, label, linestyle)` for another style),
  `vlines`: `[(x, label)]` likewise, and/or
- `contour`: `(X, Y, Z)` for a contour plot under the lines, and/or
- `scatter`: `(x, y, values)` points coloured by `values` (`clim`, default (0, 1); `colorbar`:
  the colour bar's label), and/or
- `boxes`: `[((x_low, x_high), (y_low, y_high), label)]` rectangles drawn as dashed outlines;
- `note`: a short text in the panel's top right corner (`note_color` to colour it; `title_color`
  colours the title).

A figure can carry a `suptitle` and, for a grid, one `xlabel`/`ylabel` for all its panels.
`figure_png(panels, ...)` draws the same figure into PNG bytes (the interactive figures).
"""

import dataclasses
import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

MARKERS = ("o", "x", "s", "D", "^", "v", "*", "+")
DPI = 100


@dataclasses.dataclass
class Line:
    x: object
    y: object
    label: str | None = None
    style: str = "-"
    marker: str | None = None
    markevery: int | None = None
    color: str | None = None
    band: tuple | None = None  # (low, high) around y: the spread over seeds, shaded


def draw_panels(
    panels,
    *,
    ncols=None,
    suptitle=None,
    xlabel=None,
    ylabel=None,
    panel_size=(4.0, 3.2),
    legend_panel=0,
    pyplot=False,
):
    """Draw `panels` on a grid of `ncols` columns; returns the matplotlib Figure.

    The figure belongs to no pyplot window (so a notebook does not show it by itself) unless
    `pyplot=True` (for `plt.show()`).
    """
    count = len(panels)
    ncols = ncols or count
    nrows = -(-count // ncols)
    figsize = (panel_size[0] * ncols, panel_size[1] * nrows)
    if pyplot:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize)
    else:
        fig = Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=False)
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
    return fig


def png_bytes(fig, dpi=DPI):
    """The figure as PNG bytes (light compression: an interactive figure redraws faster, the file is a bit larger)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def figure_png(panels, **layout):
    """`draw_panels(panels, **layout)` as PNG bytes."""
    return png_bytes(draw_panels(panels, **layout))


def plot_panels(panels, path, *, show=False, **layout):
    """Draw `panels` (see `draw_panels` for the layout) and save the figure to `path` (PNG, written whole)."""
    from coursekit.results import write_atomic

    fig = draw_panels(panels, pyplot=show, **layout)
    path = write_atomic(path, png_bytes(fig))
    if show:
        import matplotlib.pyplot as plt

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
    if "scatter" in panel:
        x, y, values = panel["scatter"]
        low, high = panel.get("clim", (0.0, 1.0))
        points = ax.scatter(x, y, c=values, cmap="viridis", vmin=low, vmax=high, s=22, edgecolors="none")
        if panel.get("colorbar"):
            ax.figure.colorbar(points, ax=ax, label=panel["colorbar"])
    for (x_low, x_high), (y_low, y_high), label in panel.get("boxes", []):
        box = Rectangle(
            (x_low, y_low), x_high - x_low, y_high - y_low, fill=False, linestyle="--", edgecolor="black", label=label
        )
        ax.add_patch(box)
    for y, label, *style in panel.get("hlines", []):
        ax.axhline(y, color="gray", linestyle=style[0] if style else ":", label=label)
    for x, label in panel.get("vlines", []):
        ax.axvline(x, color="gray", linestyle=":", label=label)
    for index, line in enumerate(panel.get("lines", [])):
        color = line.color or f"C{index % 10}"
        if line.band is not None:
            low, high = line.band
            ax.fill_between(line.x, low, high, color=color, alpha=0.2, linewidth=0)
        extra = {"marker": line.marker, "markevery": line.markevery} if line.marker else {}
        ax.plot(line.x, line.y, line.style, label=line.label, color=color, **extra)
    for key in ("xlabel", "ylabel"):
        if panel.get(key):
            getattr(ax, f"set_{key}")(panel[key])
    if panel.get("title"):
        ax.set_title(panel["title"], color=panel.get("title_color", "black"))
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
        ax.text(
            0.97,
            0.95,
            panel["note"],
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize="small",
            color=panel.get("note_color", "black"),
            bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5},
        )


def spread(curves):
    """The mean of equally long curves and, for more than one, their (min, max) at each point: `(mean, band)`.

    With one curve the band is None: the figure of one seed is drawn as before.
    """
    stacked = np.asarray(curves, dtype=np.float64)
    mean = stacked.mean(axis=0)
    if len(stacked) < 2:
        return mean, None
    return mean, (stacked.min(axis=0), stacked.max(axis=0))


def by_variant(histories):
    """Histories grouped over seeds: `{key: [history of each seed]}`, in the order of first appearance.

    Two histories belong together when their variants have the same label (or name) and the
    same factors apart from `seed`. The key is the label, or `(label, *factor values)` for
    variants with factors (`("bn", 0.1)` for BatchNorm at weight scale 0.1).
    """
    groups = {}
    for name, history in histories.items():
        variant = history.variant
        factors = tuple(value for key, value in variant.factors.items() if key != "seed")
        key = (variant.label or name, *factors) if factors else variant.label or name
        groups.setdefault(key, []).append(history)
    return groups


def _label(key):
    return key[0] if isinstance(key, tuple) else key


def sweep_panel(finals, values, *, current=None, baseline=None, title="final accuracy", xlabel=None, xscale="log"):
    """Final training (solid) and test (dashed) accuracy against a setting swept over variants.

    `finals`: a DataFrame indexed by (seed, variant) with columns `train` and `test` (see
    `coursekit.results.final_accuracies`); `values`: `{variant: its setting}` of the swept
    variants; `baseline`: a variant drawn as dotted horizontal lines; `current`: a value
    marked by a vertical line. Over several seeds: the mean and a band from lowest to highest.
    """
    names = sorted(values, key=values.get)
    x = np.array([values[name] for name in names])
    lines = []
    for column, style in (("train", "-o"), ("test", "--x")):
        per_seed = finals[column].unstack("variant")[names].to_numpy()  # (seeds, variants)
        mean, band = spread(per_seed)
        lines.append(Line(x, mean, label=column, style=style, color="C1", band=band))
    hlines = []
    if baseline is not None:
        means = finals.xs(baseline, level="variant").mean()
        hlines = [(means["train"], f"{baseline} train", ":"), (means["test"], f"{baseline} test", "-.")]
    vlines = [(current, None)] if current is not None else []
    return {
        "title": title,
        "lines": lines,
        "hlines": hlines,
        "vlines": vlines,
        "xscale": xscale,
        "xlabel": xlabel,
        "ylabel": "accuracy",
        "ylim": (0, 1.02),
    }


def loss_panel(histories, *, title="loss", ylim=(0, 1), smooth=True):
    """A panel of each variant's per-iteration loss, smoothed like the reference (mean and band over seeds)."""
    from coursekit.results import smooth_curve

    lines = []
    for index, (key, members) in enumerate(by_variant(histories).items()):
        curves = [smooth_curve(h.losses) if smooth else np.asarray(h.losses, dtype=np.float64) for h in members]
        losses, band = spread(curves)
        x = np.arange(1, len(losses) + 1)
        lines.append(
            Line(
                x,
                losses,
                label=_label(key),
                marker=MARKERS[index % len(MARKERS)],
                markevery=max(len(losses) // 20, 1),
                band=band,
            )
        )
    return {"title": title, "lines": lines, "xlabel": "iterations", "ylabel": "loss", "ylim": ylim}


def metric_line(members, metric, **style):
    """A `Line` of `metric` per evaluation: the mean over the histories `members` (seeds) and their band."""
    points = [h.metrics.get(metric, []) for h in members]
    if not points[0]:
        return None
    steps = [step for step, _ in points[0]]
    values, band = spread([[value for _, value in p] for p in points])
    return Line(steps, values, band=band, **style)


def accuracy_panel(histories, *, title="accuracy", metrics=("train_accuracy", "test_accuracy"), ylim=(0, 1.0)):
    """A panel of accuracy per epoch: the first metric solid, the second dashed, per variant (bands: seeds)."""
    lines = []
    for index, (key, members) in enumerate(by_variant(histories).items()):
        for metric, style in zip(metrics, ("-", "--")):
            label = f"{_label(key)} {metric.replace('_accuracy', '')}"
            line = metric_line(members, metric, label=label, style=style, color=f"C{index}")
            if line:
                lines.append(line)
    return {"title": title, "lines": lines, "xlabel": "epochs", "ylabel": "accuracy", "ylim": ylim}

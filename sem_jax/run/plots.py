"""PNG plots a user can read (matplotlib, Agg backend), written atomically."""
from __future__ import annotations

import textwrap

from sem_jax.files import atomic


def line_plot(path: str, series, *, xlabel: str, ylabel: str, ylim, title: str) -> None:
  """Write a PNG line plot (matplotlib, Agg) atomically.

  series: iterable of (label or None, xs, ys, linestyle).
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  labelled = False
  for label, xs, ys, style in series:
    ax.plot(xs, ys, marker="o", label=label, linestyle=style)
    labelled = labelled or label is not None
  ax.set(xlabel=xlabel, ylabel=ylabel, ylim=ylim, title=title)
  ax.grid(alpha=0.3)
  if labelled:
    ax.legend()
  fig.tight_layout()
  atomic.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
  plt.close(fig)


def bar_plot(path: str, bars, *, xlabel: str, xlim, title: str) -> None:
  """Write a PNG horizontal bar chart (matplotlib, Agg) atomically, first bar on top, its
  value printed beside it; the figure grows with the number of bars.

  bars: iterable of (label, value, dashed: bool).
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  bars = list(bars)
  fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * len(bars)))
  ys = range(len(bars))[::-1]
  for y, (label, value, dashed) in zip(ys, bars):
    ax.barh(y, value, color="white" if dashed else "C0", edgecolor="C0",
            linestyle="--" if dashed else "-")
    ax.text(value + 0.01 * (xlim[1] - xlim[0]), y, f"{value:.1f}", va="center", fontsize=8)
  ax.set_yticks(list(ys), [b[0] for b in bars], fontsize=8)
  ax.set(xlabel=xlabel, xlim=xlim)
  ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=10)
  ax.grid(axis="x", alpha=0.3)
  fig.tight_layout()
  atomic.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
  plt.close(fig)


def heat_map(path: str, rows, cols, values, *, label: str, title: str,
             missing: str = "not run") -> None:
  """Write a PNG heat map (matplotlib, Agg) atomically: values[i][j] for row label rows[i] and
  column label cols[j] on a 0-100 scale, each cell's value printed in it; a None cell is light
  grey and reads ``missing``."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  grid = np.array([[np.nan if v is None else v for v in r] for r in values], float)
  fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(cols), 1.2 + 0.45 * len(rows)))
  cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e6e6e6")
  im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100, aspect="auto")
  for i in range(len(rows)):
    for j in range(len(cols)):
      v = grid[i, j]
      ax.text(j, i, missing if np.isnan(v) else f"{v:.0f}", ha="center", va="center",
              fontsize=6 if np.isnan(v) else 7,
              color="dimgrey" if np.isnan(v) else "black" if v > 60 else "white")
  ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
  ax.set_yticks(range(len(rows)), rows, fontsize=8)
  fig.colorbar(im, ax=ax, label=label)
  ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=10)
  fig.tight_layout()
  atomic.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
  plt.close(fig)

"""Figures for the course: interactive views with a static fallback, plots, the live dashboard.

- ``View`` / ``interactive``: ipywidgets core controls + a matplotlib picture; live in JupyterLab,
  VS Code and Colab, a plain PNG on GitHub, in nbconvert's HTML and in a reopened notebook.
- ``plot_history`` / ``plot_lr_schedule``: plain matplotlib Figures.
- ``Dashboard``: a Trainer callback that updates one output with the training curves.
- ``AttentionViewer`` / ``plot_attention``: attention weights by layer, head and query.
"""

from amla.views.attention import AttentionViewer, plot_attention
from amla.views.base import View, fig_to_png, interactive
from amla.views.dashboard import Dashboard
from amla.views.plots import plot_history, plot_lr_schedule

__all__ = [
    "AttentionViewer",
    "Dashboard",
    "View",
    "fig_to_png",
    "interactive",
    "plot_attention",
    "plot_history",
    "plot_lr_schedule",
]

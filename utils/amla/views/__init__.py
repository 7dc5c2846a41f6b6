"""Figures for the course: interactive views with a static fallback, plots, the live dashboard.

- ``View`` / ``interactive``: ipywidgets core controls + a matplotlib picture; live in JupyterLab,
  VS Code and Colab, a plain PNG on GitHub, in nbconvert's HTML and in a reopened notebook.
- ``plot_history`` / ``plot_lr_schedule``: plain matplotlib Figures.
- ``Dashboard``: a Trainer callback that updates one output with the training curves.
- ``AttentionViewer`` / ``plot_attention``: attention weights by layer, head and query.
- ``GanPlayer`` (``gan_player.record`` makes its frames): a 2-D GAN's training played back, GAN-Lab style.
- ``SampleGallery`` (``gallery.snapshot`` makes its pictures): generated images per epoch, by class, with a
  latent-interpolation strip.
- ``EmbeddingExplorer``: 2-D points (node embeddings, samples) at every saved epoch, by class, with a graph's edges.
- ``NeighbourhoodAttention``: one node's attention weights over its incoming edges, per head (graph attention).
- ``EpisodePlayer``: an RL episode's rendered frames with play controls, reward and value estimate per step.
- ``RolloutViewer``: where a ViT's class token looks (attention rollout or raw attention), image by image and
  layer by layer.
- ``GridworldViewer`` / ``plot_grid_values``: a gridworld's values and greedy policy (arrows) per iteration.
"""

from amla.views.attention import AttentionViewer, plot_attention
from amla.views.base import View, fig_to_png, interactive
from amla.views.dashboard import Dashboard
from amla.views.embedding import EmbeddingExplorer
from amla.views.episode_player import EpisodePlayer
from amla.views.gallery import SampleGallery, image_grid
from amla.views.gan_player import GanFrame, GanPlayer
from amla.views.graph_attention import NeighbourhoodAttention
from amla.views.gridworld import GridworldViewer, plot_grid_values
from amla.views.plots import plot_history, plot_lr_schedule
from amla.views.rollout import RolloutViewer

__all__ = [
    "AttentionViewer",
    "Dashboard",
    "EmbeddingExplorer",
    "EpisodePlayer",
    "GanFrame",
    "GanPlayer",
    "GridworldViewer",
    "NeighbourhoodAttention",
    "RolloutViewer",
    "SampleGallery",
    "View",
    "fig_to_png",
    "image_grid",
    "interactive",
    "plot_attention",
    "plot_grid_values",
    "plot_history",
    "plot_lr_schedule",
]

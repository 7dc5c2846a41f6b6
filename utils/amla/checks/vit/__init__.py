"""Self-checks of Hour 08 (the Vision Transformer): patches by reshaping, and attention rollout.

- 8.1 ``patchify(images, patch) -> [B, N, C p p]``: non-overlapping patches, row-major over the grid, each patch
  flattened as (channel, row, column), the order of ``Conv2d(kernel=stride=patch)`` weights, so a linear map of the
  patches equals the strided convolution. Cases: one channel (the 8x8 digits, MNIST with 7x7 patches), three
  channels, a non-square image (H != W), patches of one pixel, one patch covering the image, a batch of one,
  float64. Mistakes: a reshape without moving the axes, the grid read column by column, the patch flattened as
  (row, column, channel) (the einops order of the original ViT code, which is not the convolution's), the patch's
  rows and columns swapped. Properties: putting the patches back gives the images; patch k is the block at grid
  row k // (W/p), column k % (W/p); a linear map of the patches equals ``Conv2d(kernel=stride=patch)``. Gradients
  are compared.
- 8.2 ``attention_rollout(attentions) -> [B, T, T]``: per layer the heads averaged, the identity added for the
  residual path, the rows re-normalised, and the layers multiplied, last on the left (``R = Â_L ... Â_1``).
  Cases: softmax attention of 1-4 layers, one head, one token (T = 1), a batch of one, float64, and two whose rows
  do not sum to 1 (attention dropout in training mode; padded queries whose rows are zero), where re-normalising
  matters. Mistakes: rows divided without ``keepdim`` (each row divided by another row's sum), no identity added,
  the identity added but the rows not re-normalised, the layers multiplied in the wrong order, the maximum over
  heads instead of the mean, the last layer only. Properties: rows sum to 1; identity attention gives the
  identity; no negative entries.
"""

from amla.checks.vit.patchify import check_patchify
from amla.checks.vit.rollout import check_attention_rollout

__all__ = ["check_attention_rollout", "check_patchify"]

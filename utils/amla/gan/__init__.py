"""GANs, Hours 10-12: the adversarial game in two dimensions, DCGANs on digits, and how to stabilise and measure them.

- ``toy``: mixtures of Gaussians in 2-D (the ring of 8, the 5x5 grid) and the mode-coverage metric
- ``images``: digit images (MNIST's test set when present, scikit-learn's 8x8 digits offline) and the course's
  independent digit classifier (it recognises generated digits and gives FID's features)
- ``losses``: the discriminator and generator losses (non-saturating and saturating)
- ``mlp``: the 2-D generator and discriminator (with PacGAN's packing)
- ``dcgan``: the DCGAN generator and discriminator, conditional on a class or not
- ``stable``: the WGAN critic loss, the gradient penalty, spectral normalisation, the hinge loss
- ``fid``: the Frechet distance and FID on the classifier's features
- ``style``: StyleGAN's ideas in small form (mapping network, AdaIN, style mixing)

Every training loop is written out in the hour's notebook; these modules hold the pieces it is made of.
"""

from amla._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, ("dcgan", "fid", "images", "losses", "mlp", "stable", "style", "toy"))

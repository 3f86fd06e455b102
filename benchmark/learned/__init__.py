"""Learned spike inference: the ``cnn`` method's network, training data, training and models.

Modules (only ``recipe`` is free of torch; the others import it at module level and are imported
lazily by the method and the command line, so that the method registry imports without torch):

- :mod:`~cabench.benchmark.learned.recipe`: the training recipe (architecture, data, optimiser)
  as one validated dataclass, noise-level parsing.
- :mod:`~cabench.benchmark.learned.model`: the 1-D CNN, its exact sliding (whole-trace)
  evaluation, ensembles, weight initialisation.
- :mod:`~cabench.benchmark.learned.data`: ground truth -> training samples (resampling, noise
  matching, smoothed targets, dataset balancing, windows built on the fly).
- :mod:`~cabench.benchmark.learned.train`: training, model folders (save/load) and prediction.
"""

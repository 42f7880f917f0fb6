"""tlhelpers: the helpers of *Transfer Learning, Hands-On*.

One module per idea, each readable in one sitting; the two catalogs are packages:

- :mod:`tlhelpers.settings` -- paths, device, seeds, determinism, environment variables
- :mod:`tlhelpers.io` -- atomic writes, checksums, checked downloads, safe extraction
- :mod:`tlhelpers.batch` -- the one place that knows what a batch and a model output look like
- :mod:`tlhelpers.data` -- the dataset catalog (registry, sources, verified copies), image
  folders for your own data, arrays, splits and seeded loaders
- :mod:`tlhelpers.models` -- the model catalog (image and text), anatomy (blocks, heads,
  splitting), freezing, learning-rate groups, a head from a linear probe
- :mod:`tlhelpers.features` -- frozen-backbone feature extraction with a content-keyed cache
- :mod:`tlhelpers.train` -- ``train_one_epoch``, ``evaluate_one_epoch``, a short ``fit``,
  early stopping, the learning-rate range test
- :mod:`tlhelpers.checkpoint` -- resumable runs and saved models, loaded without running code
- :mod:`tlhelpers.adapt` -- domain adaptation losses, layers and loop
- :mod:`tlhelpers.transferability` -- LogME, H-score, LEEP, NCE
- :mod:`tlhelpers.evaluate` -- metrics and predictions (also on a folder of new images)
- :mod:`tlhelpers.plot` -- the book's figures

The calling convention, the same everywhere (``tests/test_conventions.py`` holds
every public function to it):

- what a function works *on* -- the data, the model, a name -- is positional;
  every option is keyword-only (``fit(model, train_loader, val_loader, epochs=3)``);
- loops take ``seed=``, ``device=`` and ``progress=`` with the same meaning and
  defaults (``device=None``: CUDA, then Apple MPS, then CPU);
- ``batchnorm_eval=True`` means one thing: BatchNorm layers keep their running
  statistics (eval mode) while their affine weights still train.
"""

__version__ = "0.2.0"

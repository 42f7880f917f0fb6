"""tlhelpers: the helpers of *Transfer Learning, Hands-On*.

One module per idea, each readable in one sitting:

- :mod:`tlhelpers.settings` -- paths, device, seeds, environment variables
- :mod:`tlhelpers.io` -- atomic writes, checksums, downloads, safe extraction
- :mod:`tlhelpers.data` -- the dataset registry and image folders
- :mod:`tlhelpers.models` -- the backbone registry, freezing, heads, learning-rate groups
- :mod:`tlhelpers.features` -- frozen-backbone feature extraction with a disk cache
- :mod:`tlhelpers.train` -- the fit loop, checkpoints and resume
- :mod:`tlhelpers.adapt` -- domain adaptation losses, layers and loop
- :mod:`tlhelpers.transferability` -- LogME, H-score, LEEP, NCE
- :mod:`tlhelpers.evaluate` -- metrics and predictions
- :mod:`tlhelpers.plot` -- the book's figures
"""

__version__ = "0.1.0"

"""Datasets: the registry of the book's datasets, image folders, arrays, subsets and loaders.

One module per idea, re-exported here so that ``from tlhelpers import data``
gives everything (``data.load_dataset``, ``data.ImageFolder``, ...):

- :mod:`~tlhelpers.data.registry` -- :class:`DatasetInfo` entries, finding a
  dataset (cache, then mirrors, then a checked download), verifying copies;
- :mod:`~tlhelpers.data.catalog` -- one entry and loader per dataset the book uses;
- :mod:`~tlhelpers.data.images` -- :func:`load_image`, the checked :class:`ImageFolder` and
  :func:`sample_folder` (a small practice folder copied from a dataset);
- :mod:`~tlhelpers.data.arrays` -- in-memory :class:`ArrayDataset` and IDX files;
- :mod:`~tlhelpers.data.detection` -- :class:`DetectionDataset` of (image, boxes) pairs,
  :func:`boxes_from_csv`, :func:`collate_detection`;
- :mod:`~tlhelpers.data.segmentation` -- :class:`SegmentationDataset` of (image, mask) pairs,
  :func:`mask_from_colors`;
- :mod:`~tlhelpers.data.texts` -- in-memory :class:`TextDataset` and :func:`word_tokenize`;
- :mod:`~tlhelpers.data.splits` -- few-shot subsets, stratified splits, seeded loaders.

Examples
--------
>>> from tlhelpers import data
>>> "hymenoptera" in data.list_datasets()
True
"""

from . import catalog  # noqa: F401 (registers the book's datasets)
from .arrays import ArrayDataset, read_idx
from .images import (
    IMAGE_EXTENSIONS,
    SPLIT_FOLDER_NAMES,
    ImageFolder,
    ImageTooLargeError,
    load_image,
    sample_folder,
)
from .registry import (
    _REGISTRY,  # noqa: F401 (tests and advanced users reach into the registry)
    DatasetInfo,
    DatasetNotFoundError,
    Source,
    UnknownDatasetError,
    dataset_dir,
    dataset_info,
    list_datasets,
    load_dataset,
    make_manifest,
    register_dataset,
)
from .detection import DetectionDataset, boxes_from_csv, collate_detection
from .segmentation import SegmentationDataset, mask_from_colors
from .texts import BucketBatchSampler, TextDataset, pad_token_ids, restore_order, token_loader, word_tokenize
from .splits import (
    _targets,  # noqa: F401
    few_shot_indices,
    few_shot_subset,
    image_loader,
    split_dataset,
    split_indices,
    tensor_loader,
    to_tensors,
)

__all__ = [
    "IMAGE_EXTENSIONS", "SPLIT_FOLDER_NAMES", "ArrayDataset", "DatasetInfo",
    "DatasetNotFoundError", "ImageFolder", "ImageTooLargeError", "Source", "UnknownDatasetError",
    "dataset_dir", "dataset_info", "few_shot_indices", "few_shot_subset", "image_loader", "list_datasets",
    "load_dataset", "load_image", "SegmentationDataset", "mask_from_colors",
    "DetectionDataset", "boxes_from_csv", "collate_detection", "make_manifest", "read_idx", "register_dataset", "split_dataset",
    "split_indices", "tensor_loader", "TextDataset", "BucketBatchSampler", "pad_token_ids", "restore_order",
    "token_loader", "to_tensors", "word_tokenize",
]

"""Subsets and loaders: few-shot subsets, stratified splits, seeded DataLoaders, stacking into tensors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset


def few_shot_indices(targets: Sequence[int], k: int | None, *, seed: int = 0) -> np.ndarray:
    """Pick ``k`` indices per class at random (all of them when ``k`` is None).

    The same ``seed`` gives the same subset, and a larger ``k`` with the same
    seed contains the smaller one, so accuracy-vs-labels curves are nested.

    Raises
    ------
    ValueError
        When a class has fewer than ``k`` examples (the counts are listed).

    Examples
    --------
    >>> from tlhelpers.data import few_shot_indices
    >>> few_shot_indices([0, 0, 0, 1, 1, 1], k=2, seed=0).size
    4
    """
    targets = np.asarray(targets)
    if k is None:
        return np.arange(targets.size)
    if k < 1:
        raise ValueError(f"k must be a positive number of labels per class, not {k}")
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        if idx.size < k:
            counts = {int(c2): int((targets == c2).sum()) for c2 in np.unique(targets)}
            raise ValueError(f"class {int(c)} has {idx.size} examples, fewer than k={k}; counts per class: {counts}")
        picked.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(picked))


def few_shot_subset(dataset: Dataset, k: int | None, *, seed: int = 0) -> Subset:
    """``torch.utils.data.Subset`` with ``k`` examples per class (see :func:`few_shot_indices`).

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from tlhelpers.data import few_shot_subset
    >>> ds = TensorDataset(torch.zeros(6, 1), torch.tensor([0, 0, 0, 1, 1, 1]))
    >>> ds.targets = [0, 0, 0, 1, 1, 1]
    >>> len(few_shot_subset(ds, 1))
    2
    """
    return Subset(dataset, few_shot_indices(_targets(dataset), k, seed=seed).tolist())


def split_indices(targets: Sequence[int], *, val_fraction: float = 0.2, seed: int = 0,
                  stratify: bool = True, groups: Sequence | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split of indices, stratified by class by default.

    Each class keeps (about) the same share in both parts; the same
    ``seed`` gives the same split. Both index arrays are sorted.

    ``groups`` (one id per example) keeps every group whole, in one part or
    the other: pass it when several examples show the same thing (one
    patient, one tile at several exposures, one field), or the validation
    part holds near-copies of training examples and flatters every score.
    Whole groups are then drawn, class by class (a group counts for its most
    common class), until the class's share of validation examples is as
    close to ``val_fraction`` as whole groups allow.

    Raises
    ------
    ValueError
        ``val_fraction`` outside (0, 1), or (stratified) a class with fewer than
        two examples (two groups, with ``groups``), or a validation part too
        small to hold every class (the counts per class are listed).

    Examples
    --------
    >>> from tlhelpers.data import split_indices
    >>> tr, va = split_indices([0] * 10 + [1] * 10, val_fraction=0.2)
    >>> len(tr), len(va)
    (16, 4)
    >>> tr, va = split_indices([0] * 6 + [1] * 6, groups=[0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
    ...                        val_fraction=1 / 3)
    >>> len(va), all(va[::2] + 1 == va[1::2])   # two whole pairs, one per class
    (4, True)
    """
    from sklearn.model_selection import train_test_split

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), not {val_fraction}")
    targets = np.asarray(targets)
    if groups is not None:
        return _split_groups(targets, np.asarray(groups), val_fraction, seed, stratify)
    idx = np.arange(len(targets))
    if stratify:
        classes, counts = np.unique(targets, return_counts=True)
        per_class = {c.item(): int(n) for c, n in zip(classes, counts, strict=True)}
        n_val = int(np.ceil(val_fraction * len(targets)))
        if counts.min(initial=2) < 2 or n_val < len(classes) or len(targets) - n_val < len(classes):
            raise ValueError(
                f"cannot split {len(targets)} examples with val_fraction={val_fraction} keeping every class "
                f"in both parts (counts per class: {per_class}); collect more examples, change "
                "val_fraction, or pass stratify=False")
    tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed,
                              stratify=targets if stratify else None)
    return np.sort(tr), np.sort(va)


def _split_groups(targets: np.ndarray, groups: np.ndarray, val_fraction: float, seed: int,
                  stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    if groups.shape != targets.shape:
        raise ValueError(f"groups has shape {groups.shape} but targets {targets.shape}: one group id per example")
    group_names, group_of = np.unique(groups, return_inverse=True)
    class_names, class_of = np.unique(targets, return_inverse=True)
    # each group counts for its most common class
    counts = np.zeros((len(group_names), len(class_names)), dtype=np.int64)
    np.add.at(counts, (group_of, class_of), 1)
    label = counts.argmax(1) if stratify else np.zeros(len(group_names), dtype=np.int64)
    size = counts.sum(1)
    rng = np.random.default_rng(seed)
    val_groups = []
    for c in np.unique(label):
        members = rng.permutation(np.flatnonzero(label == c))
        if len(members) < 2:
            what = f"class {class_names[c].item()!r}" if stratify else "the data"
            per_class = {class_names[k].item(): int((label == k).sum()) for k in np.unique(label)}
            raise ValueError(f"cannot split: {what} has {len(members)} group(s), and a group cannot be in both "
                             f"parts (groups per class: {per_class}); pass stratify=False or collect more groups")
        cumulative = np.cumsum(size[members])
        goal = val_fraction * cumulative[-1]
        # the prefix of whole groups closest to the goal, at least one group, never all of them
        take = int(np.clip(np.argmin(np.abs(cumulative - goal)) + 1, 1, len(members) - 1))
        val_groups.append(members[:take])
    in_val = np.isin(group_of, np.concatenate(val_groups))
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def split_dataset(dataset: Dataset, *, val_fraction: float = 0.2, seed: int = 0,
                  stratify: bool = True) -> tuple[Subset, Subset]:
    """Split a labelled dataset (e.g. an :class:`ImageFolder` without a validation folder) in two.

    A stratified, seeded :func:`split_indices` over the dataset's targets,
    returned as two ``torch.utils.data.Subset``. Both share the dataset's
    ``transform``; for a training transform with augmentation and a plain
    validation one, split the indices and take a view per transform with
    :meth:`ImageFolder.with_transform` (example).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from torch.utils.data import Subset
    >>> from tlhelpers.data import ImageFolder, split_dataset, split_indices
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for c in ["a", "b"]:
    ...     (root / c).mkdir()
    ...     for i in range(5):
    ...         Image.new("RGB", (4, 4)).save(root / c / f"{i}.png")
    >>> train, val = split_dataset(ImageFolder(root), val_fraction=0.4, seed=0)
    >>> len(train), len(val)
    (6, 4)
    >>> photos = ImageFolder(root)
    >>> tr, va = split_indices(photos.targets, val_fraction=0.4, seed=0)  # different transforms:
    >>> val = Subset(photos.with_transform(None), va.tolist())
    """
    tr, va = split_indices(_targets(dataset), val_fraction=val_fraction, seed=seed, stratify=stratify)
    return Subset(dataset, tr.tolist()), Subset(dataset, va.tolist())


def _targets(dataset: Dataset) -> list[int]:
    if hasattr(dataset, "targets"):
        return list(np.asarray(dataset.targets).tolist())
    if isinstance(dataset, Subset):
        parent = _targets(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def tensor_loader(*tensors: torch.Tensor, batch_size: int = 64, shuffle: bool = True,
                  seed: int = 0) -> DataLoader:
    """A DataLoader over in-memory tensors whose shuffling order depends on ``seed`` only.

    Each loader has its own generator, so two methods given the same seed see
    the same batches in the same order, whatever else draws random numbers.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.data import tensor_loader
    >>> x = torch.arange(6.0)
    >>> a = [b[0].tolist() for b in tensor_loader(x, batch_size=3, seed=1)]
    >>> a == [b[0].tolist() for b in tensor_loader(x, batch_size=3, seed=1)]
    True
    """
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy and ``random`` in a DataLoader worker from the loader's own seed."""
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def image_loader(dataset: Dataset, *, batch_size: int = 32, shuffle: bool = True, seed: int = 0,
                 num_workers: int = 0, drop_last: bool = False, **kwargs) -> DataLoader:
    """A DataLoader over any dataset whose order (and workers' random augmentations) depend on ``seed`` only.

    Like :func:`tensor_loader` for datasets that decode files: the loader
    has its own generator, and every worker seeds NumPy and ``random`` from
    it, so two runs with the same seed see the same batches.

    Parameters
    ----------
    dataset : Dataset
        E.g. an :class:`ImageFolder` or a ``Subset`` of one.
    batch_size, shuffle, num_workers, drop_last
        As for ``torch.utils.data.DataLoader``.
    seed : int
        Seeds the shuffling order and the workers.
    **kwargs
        Passed to ``DataLoader`` (e.g. ``pin_memory=True``).

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from tlhelpers.data import image_loader
    >>> ds = TensorDataset(torch.arange(8))
    >>> a = [b[0].tolist() for b in image_loader(ds, batch_size=4, seed=2)]
    >>> a == [b[0].tolist() for b in image_loader(ds, batch_size=4, seed=2)]
    True
    """
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      drop_last=drop_last, generator=torch.Generator().manual_seed(seed),
                      worker_init_fn=_seed_worker if num_workers else None, **kwargs)


def to_tensors(dataset: Dataset, *, batch_size: int = 64, num_workers: int = 0,
               progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a dataset (and its deterministic transform) once and stack it into tensors.

    Useful when every epoch would decode and resize the same images again.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from tlhelpers.data import to_tensors
    >>> x, y = to_tensors(TensorDataset(torch.zeros(3, 2), torch.tensor([0, 1, 0])))
    >>> tuple(x.shape), y.tolist()
    ((3, 2), [0, 1, 0])
    """
    from tqdm.auto import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    xs, ys = [], []
    for x, y in tqdm(loader, desc="loading", disable=not progress, leave=False):
        xs.append(x)
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys).long()

"""The book's own small network, trained from scratch as the no-transfer baseline."""

from __future__ import annotations

from torch import nn


def small_cnn(num_classes: int, *, in_channels: int = 3, width: int = 32) -> nn.Sequential:
    """A small CNN for training from scratch: four conv-BN-ReLU-pool blocks and a head.

    The book's baseline without transfer (same data, same loop, no
    pretraining). ``model[i]`` is block ``i`` and ``model[4]`` the head
    (pool, flatten, dropout, Linear), so layers can be transferred block by
    block (:func:`~tlhelpers.models.transfer_blocks`) and the network split into
    features and classifier (``split_at(model, "4.2")``).

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.models import small_cnn
    >>> small_cnn(2)(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 2])
    """
    blocks: list[nn.Module] = []
    c = in_channels
    for i in range(4):
        out = width * 2 ** min(i, 2)
        blocks.append(nn.Sequential(nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                                    nn.ReLU(inplace=True), nn.MaxPool2d(2)))
        c = out
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(c, num_classes))
    return nn.Sequential(*blocks, head)

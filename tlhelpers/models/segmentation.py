"""A pretrained classifier turned into a segmentation network: encoder + light FPN decoder.

An image classifier already computes feature maps at strides 4, 8, 16 and 32 on
its way to the class scores. :class:`FPNSegmenter` keeps those maps (the
*encoder*), drops the classifier, and adds a small decoder in the style of a
feature pyramid network (Lin et al., 2017; Kirillov et al., 2019): each map is
projected to ``width`` channels by a 1x1 convolution, the coarse maps are
upsampled and added to the finer ones, and a 3x3 convolution and a 1x1
classifier give per-pixel class scores at stride 4, upsampled to the input size.

Only the decoder starts from random weights; ``pretrained=True`` fills the
encoder with the ImageNet weights of the registered classifier.

Examples
--------
>>> import torch
>>> from tlhelpers.models import segmentation_model
>>> net = segmentation_model("efficientnet_lite0", 3, pretrained=False, seed=0)
>>> net(torch.zeros(1, 3, 64, 96)).shape
torch.Size([1, 3, 64, 96])
>>> net.encoder_strides
[4, 8, 16, 32]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import create_model, model_spec


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FPNSegmenter(nn.Module):
    """Per-pixel class scores from an encoder's feature maps (a light FPN decoder).

    Parameters
    ----------
    encoder : nn.Module
        Returns a list of feature maps, finest first (e.g. timm's
        ``FeatureListNet``).
    channels : list of int
        Channels of each map.
    strides : list of int
        Stride of each map relative to the input.
    num_classes : int
        Output channels (one score per class and pixel).
    width : int
        Channels of the decoder.

    Attributes
    ----------
    encoder, decoder : nn.Module
        The two parts, so that an optimiser can give them different learning
        rates and ``freeze`` can stop the encoder.
    """

    def __init__(self, encoder: nn.Module, channels: list[int], strides: list[int], num_classes: int,
                 *, width: int = 64):
        super().__init__()
        self.encoder = encoder
        self.encoder_strides = list(strides)
        self.decoder = nn.ModuleDict({
            "lateral": nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels),
            "fuse": _conv_bn_relu(width, width),
            "classifier": nn.Conv2d(width, num_classes, 1),
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        lateral = self.decoder["lateral"]
        y = lateral[-1](feats[-1])
        for f, proj in zip(reversed(feats[:-1]), reversed(list(lateral)[:-1])):
            y = proj(f) + F.interpolate(y, size=f.shape[-2:], mode="bilinear", align_corners=False)
        y = self.decoder["classifier"](self.decoder["fuse"](y))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def segmentation_model(name: str, num_classes: int, *, pretrained: bool = True, seed: int | None = None,
                       width: int = 64, strides: tuple[int, ...] = (4, 8, 16, 32)) -> FPNSegmenter:
    """A registered timm classifier as the encoder of an :class:`FPNSegmenter`.

    Parameters
    ----------
    name : str
        A registered model name whose library is timm (the EfficientNet-Lite family).
    num_classes : int
        Number of classes per pixel.
    pretrained : bool
        Start the encoder from the registered ImageNet weights (checked as
        :func:`create_model` checks them); False draws every weight at random.
    seed : int, optional
        Draw the random weights (the decoder; everything when not pretrained)
        from this seed, leaving the global random state as it was.
    width : int
        Decoder channels.
    strides : tuple of int
        Which of the encoder's feature maps to use, by stride.

    Raises
    ------
    ValueError
        A model that is not a timm classifier, or a stride the encoder does not have.

    Examples
    --------
    >>> from tlhelpers.models import segmentation_model
    >>> segmentation_model("resnet18", 3, pretrained=False)
    Traceback (most recent call last):
    ...
    ValueError: segmentation_model needs a timm encoder (efficientnet_lite0, efficientnet_lite1, efficientnet_lite2); 'resnet18' is a torchvision model
    """
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        encoder, channels = timm_encoder(name, pretrained=pretrained, strides=strides, caller="segmentation_model")
        return FPNSegmenter(encoder, channels, list(strides), num_classes, width=width)


def timm_encoder(name: str, *, pretrained: bool, strides: tuple[int, ...],
                 caller: str = "timm_encoder") -> tuple[nn.Module, list[int]]:
    """A registered timm classifier's feature maps at ``strides`` (finest first), and their channels.

    The classifier head is dropped (timm's ``FeatureListNet``); with
    ``pretrained=True`` the weights are the registered, checksummed ImageNet
    weights. Random weights come from the global random state.
    """
    from timm.models import FeatureListNet

    spec = model_spec(name)
    if spec.library != "timm":
        from .registry import _REGISTRY

        timm_names = ", ".join(n for n, s in _REGISTRY.items() if s.library == "timm")
        raise ValueError(f"{caller} needs a timm encoder ({timm_names}); "
                         f"{name!r} is a {spec.library} model")
    classifier = create_model(name, pretrained=pretrained, progress=False)
    info = classifier.feature_info
    by_stride = {f["reduction"]: i for i, f in enumerate(info)}   # the last map of each stride
    missing = [s for s in strides if s not in by_stride]
    if missing:
        raise ValueError(f"{name} has feature maps at strides {sorted(by_stride)}, not {missing}")
    indices = tuple(by_stride[s] for s in strides)
    encoder = FeatureListNet(classifier, out_indices=indices, flatten_sequential=True)
    return encoder, [info[i]["num_chs"] for i in indices]

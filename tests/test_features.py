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


def test_mixed_precision_features_are_float32_close_and_cached_apart(setup, tmp_path):
    from tlhelpers import settings

    m, ds = setup
    f32, _ = features.extract_features(m, ds, layers=["layer2"], cache=tmp_path, progress=False,
                                       device="cpu")
    with settings.mixed_precision("cpu", enabled=True):
        bf, _ = features.extract_features(m, ds, layers=["layer2"], cache=tmp_path, progress=False,
                                          device="cpu")
    assert len(list(tmp_path.glob("*.pt"))) == 2   # a float32 entry is never served inside autocast
    assert bf["layer2"].dtype == torch.float32 and not torch.equal(bf["layer2"], f32["layer2"])
    assert torch.allclose(bf["layer2"], f32["layer2"], rtol=0.05, atol=0.05)   # bfloat16: 8 bits of mantissa
    again, _ = features.extract_features(m, ds, layers=["layer2"], cache=tmp_path, progress=False,
                                         device="cpu")
    assert torch.equal(again["layer2"], f32["layer2"])   # outside the context: the float32 entry


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


# --------------------------------------------------------------------------- pooling traps

def test_each_pooling_on_its_own_key_and_vectors_once(setup):
    m, ds = setup
    f, _ = features.extract_features(m, ds, layers=["layer2", "penultimate"], pool=["avg", "max"],
                                     cache=False, progress=False)
    assert sorted(f) == ["layer2/avg", "layer2/max", "penultimate"]
    full, _ = features.extract_features(m, ds, layers=["layer2"], pool=None, cache=False, progress=False)
    assert torch.allclose(f["layer2/max"], full["layer2"].amax((2, 3)), atol=1e-5)


def test_pooling_a_vector_layer_other_than_avg_is_an_error(setup):
    m, ds = setup
    for pool in ["avgmax", "max", "cls"]:  # used to return the (average) vector silently
        with pytest.raises(ValueError, match="outputs vectors"):
            features.extract_features(m, ds, layers=["penultimate"], pool=pool, cache=False, progress=False)
    with pytest.raises(ValueError, match="needs a token sequence"):
        features.extract_features(m, ds, layers=["layer2"], pool="cls", cache=False, progress=False)


def test_token_sequences_pool_by_cls_avg_and_max():
    tokens = torch.randn(3, 5, 4)
    assert torch.equal(features._pool(tokens, "cls", "x"), tokens[:, 0])
    assert torch.equal(features._pool(tokens, "max", "x"), tokens.amax(1))
    with pytest.raises(ValueError, match="token sequences"):
        features._pool(tokens, "avgmax", "x")


def test_unlabelled_dataset_gives_features_and_no_labels(setup):
    m, ds = setup
    f, y = features.extract_features(m, TensorDataset(ds.tensors[0]), cache=False, progress=False)
    assert y is None and f["penultimate"].shape == (6, 512)


# --------------------------------------------------------------------------- the cache key is the content

def test_array_datasets_are_keyed_by_content_not_address(setup, tmp_path):
    import numpy as np
    from tlhelpers.data import ArrayDataset
    m, _ = setup
    outs = []
    for value in [0, 255]:  # two datasets, often at one reused address
        ds = ArrayDataset(np.full((4, 32, 32, 3), value, np.uint8), [0, 1, 0, 1], ["a", "b"])
        outs.append(features.extract_features(m, ds, cache=tmp_path, progress=False)[0]["penultimate"])
        del ds
    assert not torch.equal(outs[0], outs[1])


def test_lambda_transforms_with_other_functions_get_other_keys():
    import torchvision.transforms as T
    ds = TensorDataset(torch.zeros(2, 3))
    ds.transform = T.Lambda(lambda x: x + 1)
    a = features.dataset_fingerprint(ds)
    ds.transform = T.Lambda(lambda x: x * 2)
    assert features.dataset_fingerprint(ds) != a


def test_random_transforms_are_refused_for_caching(setup, tmp_path):
    import torchvision.transforms as T
    m, ds = setup
    ds.transform = T.Compose([T.RandomHorizontalFlip(), T.Normalize([0.5] * 3, [0.5] * 3)])
    with pytest.raises(ValueError, match="RandomHorizontalFlip is random"):
        features.extract_features(m, ds, cache=tmp_path, progress=False)
    features.extract_features(m, ds, cache=False, progress=False)  # without the cache it is fine


def test_edited_image_with_same_size_and_mtime_gets_another_key(image_tree):
    import os
    from PIL import Image
    from tlhelpers.data import ImageFolder
    path = image_tree / "ants" / "ants0.jpg"
    a = features.dataset_fingerprint(ImageFolder(image_tree))
    st = os.stat(path)
    Image.new("RGB", (16, 12), (10, 200, 10)).save(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert features.dataset_fingerprint(ImageFolder(image_tree)) != a


def test_same_weights_other_activation_get_other_keys():
    from torch import nn
    a = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    b = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    b[0].load_state_dict(a[0].state_dict())
    assert features.model_fingerprint(a) != features.model_fingerprint(b)


def test_unknown_dataset_type_is_computed_uncached_with_a_warning(setup, tmp_path):
    from torch.utils.data import Dataset
    m, ds = setup

    class Plain(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return ds[i]

        def __repr__(self):
            return "Plain()"  # a stable repr used to collide

    with pytest.warns(UserWarning, match="not cached"):
        f, _ = features.extract_features(m, Plain(), cache=tmp_path, progress=False)
    assert f["penultimate"].shape == (6, 512) and not list(tmp_path.glob("*.pt"))


def test_read_only_cache_returns_features_with_a_warning(setup, tmp_path, monkeypatch):
    m, ds = setup

    def refuse(obj, path):  # what a read-only folder does (root can write anywhere, so simulate it)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(features, "save_torch", refuse)
    with pytest.warns(UserWarning, match="could not write the feature cache"):
        f, _ = features.extract_features(m, ds, cache=tmp_path, progress=False)
    assert f["penultimate"].shape == (6, 512)


def test_non_utf8_file_names_do_not_crash_the_key(tmp_path):
    import os
    from PIL import Image
    root = tmp_path / "imgs"
    for c in ["a", "b"]:
        (root / c).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / c / "ok.png")
    odd = os.fsencode(str(root / "a")) + b"/\xff\xfe.png"
    with open(odd, "wb") as fh:
        fh.write((root / "a" / "ok.png").read_bytes())
    from tlhelpers.data import ImageFolder
    assert len(features.dataset_fingerprint(ImageFolder(root))) == 64


def test_augmented_views_are_seeded_cacheable_and_leave_the_caller_rng_alone(setup, tmp_path):
    from torchvision.transforms import v2

    m, ds = setup
    aug = v2.Compose([v2.RandomResizedCrop(24, scale=(0.3, 1.0)), v2.RandomHorizontalFlip()])
    views = features.AugmentedViews(ds, aug, views=3, seed=7)
    assert len(views) == 18 and views[13][1].item() == ds[1][1].item()   # view 2 of item 1
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = views[13][0]
    assert torch.equal(torch.random.get_rng_state(), before)              # caller's draws untouched
    assert torch.equal(first, views[13][0]) and not torch.equal(views[1][0], first)
    f1, y = features.extract_features(m, views, cache=tmp_path, progress=False)
    assert f1["penultimate"].shape == (18, 512) and y.tolist() == ds.tensors[1].repeat(3).tolist()
    f2, _ = features.extract_features(m, views, cache=tmp_path, progress=False)   # read back
    assert torch.equal(f1["penultimate"], f2["penultimate"]) and len(list(tmp_path.glob("*.pt"))) == 1
    features.extract_features(m, features.AugmentedViews(ds, aug, views=3, seed=8), cache=tmp_path,
                              progress=False)
    assert len(list(tmp_path.glob("*.pt"))) == 2                           # another seed, another entry
    with pytest.raises(ValueError, match="random"):                        # a bare random transform is not cached
        features.extract_features(m, _WithTransform(ds, aug), cache=tmp_path, progress=False)
    with pytest.raises(ValueError, match="positive whole number"):
        features.AugmentedViews(ds, aug, views=0)
    with pytest.raises(IndexError):
        views[18]


class _WithTransform(torch.utils.data.Dataset):
    def __init__(self, ds, transform):
        self.ds, self.transform = ds, transform

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return self.transform(x), y

    def fingerprint(self):
        return "fixed"

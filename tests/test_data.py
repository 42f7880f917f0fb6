import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from tlhelpers import data
from tlhelpers.data import DatasetInfo, DatasetNotFoundError, ImageFolder, Source
from tlhelpers.io import tree_digest


# ----------------------------------------------------------------- registry


def test_every_registered_dataset_has_metadata():
    assert set(data.list_datasets()) >= {"hymenoptera", "pneumoniamnist", "cwfid", "magnetic_tile_defects",
                                         "digits_mnist_usps", "raccoon", "sst2", "sms_spam", "ag_news"}
    for name in data.list_datasets():
        info = data.dataset_info(name)
        assert info.licence and info.citation and info.description and info.marker
        assert info.sources or info.homepage


def test_unknown_dataset_lists_known_names():
    with pytest.raises(KeyError, match="hymenoptera"):
        data.dataset_info("imagenet-22k")


def test_offline_without_mirror_names_dataset_url_and_variable(isolated_env):
    with pytest.raises(DatasetNotFoundError) as err:
        data.dataset_dir("hymenoptera")
    msg = str(err.value)
    assert "'hymenoptera'" in msg and "download.pytorch.org/tutorial/hymenoptera_data.zip" in msg
    assert "TLHELPERS_DATA_MIRROR" in msg


def test_mirror_with_wrong_layout_is_reported(isolated_env, monkeypatch):
    mirror = isolated_env / "mirror"
    (mirror / "hymenoptera_data" / "train").mkdir(parents=True)  # no hymenoptera_data/ level
    monkeypatch.setenv("TLHELPERS_DATA_MIRROR", str(mirror))
    with pytest.raises(DatasetNotFoundError, match="laid out differently"):
        data.dataset_dir("hymenoptera")


def _fake_dataset(tmp_path, name, members, digest=None, sha=None):
    """Register a dataset whose 'public source' is a local zip reached by a file:// URL."""
    z = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(z, "w") as f:
        for member, content in members.items():
            f.writestr(member, content)
    info = DatasetInfo(name=name, folder=name, description="test", licence="test", citation="test",
                       sources=(Source(z.as_uri(), sha),), marker="pkg/ready.txt", digest=digest)
    data._REGISTRY[name] = info
    return info


@pytest.fixture
def online(isolated_env, monkeypatch):
    monkeypatch.delenv("TLHELPERS_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield isolated_env
    for k in [k for k in data._REGISTRY if k.startswith("fake")]:
        del data._REGISTRY[k]


def test_download_extracts_verifies_and_then_uses_cache(online, tmp_path):
    members = {"pkg/ready.txt": "yes", "pkg/a.txt": "a"}
    ref = tmp_path / "ref"
    for m, c in members.items():
        (ref / m).parent.mkdir(parents=True, exist_ok=True)
        (ref / m).write_text(c)
    info = _fake_dataset(tmp_path, "fake_ok", members, digest=tree_digest(ref))
    path = data.dataset_dir("fake_ok", progress=False)
    assert (path / "pkg" / "a.txt").read_text() == "a"
    Path(info.sources[0].url[len("file://"):]).unlink()  # the source is gone: the cache serves
    assert data.dataset_dir("fake_ok", progress=False) == path


def test_download_with_checksum_mismatch_leaves_nothing(online, tmp_path):
    _fake_dataset(tmp_path, "fake_bad", {"pkg/ready.txt": "yes"}, digest="0" * 64)
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch"):
        data.dataset_dir("fake_bad", progress=False)
    cache = Path(online / "cache" / "datasets")
    assert not any(cache.iterdir())


def test_download_refuses_archive_escaping_target(online, tmp_path):
    _fake_dataset(tmp_path, "fake_evil", {"pkg/ready.txt": "yes", "../../evil.txt": "x"})
    with pytest.raises(DatasetNotFoundError, match="outside"):
        data.dataset_dir("fake_evil", progress=False)
    assert not list(tmp_path.rglob("evil.txt"))


def test_interrupted_download_is_not_mistaken_for_a_dataset(online, tmp_path):
    # A source that is not reachable fails the download; nothing is left in the cache.
    info = DatasetInfo(name="fake_gone", folder="fake_gone", description="t", licence="t", citation="t",
                       sources=(Source((tmp_path / "missing.zip").as_uri()),), marker="x")
    data._REGISTRY["fake_gone"] = info
    with pytest.raises(DatasetNotFoundError, match="downloading it from"):
        data.dataset_dir("fake_gone", progress=False)
    assert not (online / "cache" / "datasets" / "fake_gone").exists()


def test_hymenoptera_from_mirror(shared_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path))
    assert data.dataset_dir("hymenoptera", verify=True).parent == shared_mirror
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the placeholder gif is expected: no warning
        train = data.load_dataset("hymenoptera", "train")
        val = data.load_dataset("hymenoptera", "val")
    assert train.classes == ["ants", "bees"]
    assert np.bincount(train.targets).tolist() == [123, 121]
    assert np.bincount(val.targets).tolist() == [70, 83]
    assert [Path(p).name for p, _ in train.skipped] == ["imageNotFound.gif"]
    img, label = train[0]
    assert img.mode == "RGB" and label == 0
    with pytest.raises(ValueError, match="splits"):
        data.load_dataset("hymenoptera", "test")


def test_first_use_is_recorded_in_the_cache_not_the_mirror(shared_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path))
    data.dataset_dir("hymenoptera")
    stamps = list((tmp_path / "datasets" / ".verified").glob("hymenoptera_data-*.json"))
    assert len(stamps) == 1 and not list(shared_mirror.rglob("*.json"))


def test_make_manifest_agrees_with_tree_digest(tmp_path):
    from tlhelpers.io import digest_of_hashes

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    (tmp_path / "d" / "MANIFEST.txt").write_text("notes")
    sha, size, rel = data.make_manifest(tmp_path / "d").split()
    assert (size, rel) == ("1", "a.txt")
    assert digest_of_hashes({rel: sha}) == tree_digest(tmp_path / "d")


def test_dataset_without_loader_says_so(monkeypatch):
    # every dataset of the book has a loader now: a registered entry without one stands in
    import dataclasses
    monkeypatch.setitem(data._REGISTRY, "raccoon", dataclasses.replace(data.dataset_info("raccoon"), loader=None))
    with pytest.raises(NotImplementedError, match="dataset_dir"):
        data.load_dataset("raccoon")


# ----------------------------------------------------------------- image folders


def test_bad_files_are_skipped_and_counted(image_tree):
    (image_tree / "ants" / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    good = image_tree / "ants" / "ants0.jpg"
    (image_tree / "ants" / "truncated.jpg").write_bytes(good.read_bytes()[:-40])
    Image.new("P", (8, 8)).save(image_tree / "bees" / "imageNotFound.gif")
    (image_tree / "bees" / ".DS_Store").write_bytes(b"\0")
    with pytest.warns(UserWarning, match="skipped 3 file"):
        ds = ImageFolder(image_tree)
    reasons = {Path(p).name: r for p, r in ds.skipped}
    assert set(reasons) == {"corrupt.jpg", "truncated.jpg", "imageNotFound.gif"}
    assert "cannot be decoded" in reasons["corrupt.jpg"] and "extension" in reasons["imageNotFound.gif"]
    assert len(ds) == 8
    # and nothing fails later inside DataLoader workers
    from torchvision.transforms import ToTensor
    ds.transform = ToTensor()
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert sum(len(y) for _, y in batches) == 8


def test_grayscale_rgba_palette_are_converted(image_tree):
    Image.new("L", (8, 8), 100).save(image_tree / "ants" / "gray.png")
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(image_tree / "ants" / "clear.png")
    Image.new("P", (8, 8)).save(image_tree / "bees" / "pal.png")
    ds = ImageFolder(image_tree)
    by_name = {Path(p).name: i for i, (p, _) in enumerate(ds.samples)}
    for name in ["gray.png", "clear.png", "pal.png"]:
        assert ds[by_name[name]][0].mode == "RGB"
    assert ds[by_name["clear.png"]][0].getpixel((0, 0)) == (255, 255, 255)  # transparent -> white


def test_with_transform_is_a_view_that_reads_nothing_again(image_tree, monkeypatch):
    from tlhelpers.data import images
    from tlhelpers.features import dataset_fingerprint

    photos = ImageFolder(image_tree)
    decoded = []
    monkeypatch.setattr(images, "load_image", lambda *a, **k: decoded.append(1) or Image.new("RGB", (16, 12)))
    small = photos.with_transform(lambda img: img.resize((4, 3)))
    assert decoded == []   # no scan, no decode check: only __getitem__ reads an image
    assert small[0][0].size == (4, 3) and photos[0][0].size == (16, 12)   # the original keeps its transform
    assert small.samples == photos.samples and small.classes == photos.classes
    assert dataset_fingerprint(small) != dataset_fingerprint(photos)   # features cached per transform


def test_empty_class_folder_is_an_error(image_tree):
    (image_tree / "wasps").mkdir()
    with pytest.raises(ValueError, match="wasps"):
        ImageFolder(image_tree)
    assert ImageFolder(image_tree, allow_empty=True).classes == ["ants", "bees", "wasps"]


def test_wrong_folder_layout_is_an_error(tmp_path):
    for i in range(3):
        Image.new("RGB", (4, 4)).save(tmp_path / f"{i}.jpg")
    with pytest.raises(ValueError, match="one sub-folder per class"):
        ImageFolder(tmp_path)
    with pytest.raises(FileNotFoundError):
        ImageFolder(tmp_path / "nope")


def test_load_image_names_the_file(tmp_path):
    p = tmp_path / "bad.png"
    p.write_bytes(b"nope")
    with pytest.raises(OSError, match="bad.png"):
        data.load_image(p)


# ----------------------------------------------------------------- subsets


def test_few_shot_is_seeded_balanced_and_nested():
    targets = np.repeat([0, 1, 2], 20)
    a = data.few_shot_indices(targets, 5, seed=3)
    assert np.bincount(targets[a]).tolist() == [5, 5, 5]
    assert np.array_equal(a, data.few_shot_indices(targets, 5, seed=3))
    assert not np.array_equal(a, data.few_shot_indices(targets, 5, seed=4))
    assert set(data.few_shot_indices(targets, 2, seed=3)) <= set(data.few_shot_indices(targets, 10, seed=3))
    assert data.few_shot_indices(targets, None).size == 60
    with pytest.raises(ValueError, match="fewer than k=25"):
        data.few_shot_indices(targets, 25)


def test_few_shot_subset_and_split(image_tree):
    ds = ImageFolder(image_tree)
    sub = data.few_shot_subset(ds, 2, seed=0)
    assert len(sub) == 4 and sorted(data._targets(sub)) == [0, 0, 1, 1]
    tr, va = data.split_indices(ds.targets, val_fraction=0.5, seed=0)
    assert len(tr) == len(va) == 4 and not set(tr) & set(va)


def test_to_tensors_stacks_a_dataset():
    from torch.utils.data import TensorDataset
    x, y = data.to_tensors(TensorDataset(torch.ones(5, 2), torch.arange(5)), batch_size=2)
    assert x.shape == (5, 2) and y.tolist() == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------- array datasets


def test_fashion_mnist_from_debian_package_or_mirror():
    from conftest import need
    need(any((d / "fashion-mnist").is_dir() for d in __import__("tlhelpers").settings.mirror_dirs()),
         "Fashion-MNIST: apt-get install dataset-fashion-mnist (.ci/run does)")
    test = data.load_dataset("fashion_mnist", "test")
    x, y = test.tensors()
    assert x.shape == (10000, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert np.bincount(test.targets).tolist() == [1000] * 10 and test.classes[9] == "Ankle boot"


def test_digit_domains_from_mirror(shared_mirror):
    mnist = data.load_dataset("digits_mnist_usps", "mnist")
    usps = data.load_dataset("digits_mnist_usps", "usps_train")
    assert mnist.tensors()[0].shape == (10000, 1, 28, 28) and usps.tensors()[0].shape == (7291, 1, 16, 16)
    assert np.bincount(usps.targets).tolist()[:3] == [1194, 1005, 731]
    assert len(data.load_dataset("digits_mnist_usps", "usps_test")) == 2007


def test_idx_content_checksum_is_verified(tmp_path):
    import gzip
    import struct
    p = tmp_path / "x-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(struct.pack(">HBBI", 0, 8, 1, 2) + bytes([7, 9])))
    assert data.read_idx(p).tolist() == [7, 9]
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.read_idx(p, sha256="0" * 64)


def test_array_dataset_checks_inputs_and_layouts():
    with pytest.raises(ValueError, match="uint8"):
        data.ArrayDataset(np.zeros((2, 4, 4)), [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        data.ArrayDataset(np.zeros((2, 4, 4), np.uint8), [0, 1, 1], ["a", "b"])
    rgb = data.ArrayDataset(np.full((2, 4, 5, 3), 255, np.uint8), [0, 1], ["a", "b"])
    assert rgb[0][0].shape == (3, 4, 5) and float(rgb[0][0].max()) == 1.0


def test_magnetic_tiles_read_images_not_masks(shared_mirror):
    ds = data.load_dataset("magnetic_tile_defects", "all", check="header")
    assert ds.classes == ["Blowhole", "Break", "Crack", "Fray", "Free", "Uneven"]
    assert np.bincount(ds.targets).tolist() == [115, 85, 57, 32, 952, 103]
    assert all(p.endswith(".jpg") for p, _ in ds.samples)
    assert len(ds.skipped) == 1344 and all(p.endswith(".png") for p, _ in ds.skipped)


def test_tensor_loader_order_depends_on_its_seed_only():
    x, y = torch.arange(10.0), torch.arange(10)
    first = [b[1].tolist() for b in data.tensor_loader(x, y, batch_size=4, seed=3)]
    torch.rand(5)  # other draws from the global generator do not change the order
    assert first == [b[1].tolist() for b in data.tensor_loader(x, y, batch_size=4, seed=3)]
    assert first != [b[1].tolist() for b in data.tensor_loader(x, y, batch_size=4, seed=4)]
    ordered = [b[0].tolist() for b in data.tensor_loader(x, batch_size=4, shuffle=False)]
    assert ordered == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_pneumoniamnist_splits_from_mirror(shared_mirror):
    counts = {s: np.bincount(data.load_dataset("pneumoniamnist", s).targets).tolist()
              for s in ["train", "val", "test"]}
    assert counts == {"train": [1214, 3494], "val": [135, 389], "test": [234, 390]}
    x, y = data.load_dataset("pneumoniamnist", "test").tensors()
    assert x.shape == (624, 1, 28, 28) and 0 <= x.min() and x.max() <= 1




def test_cwfid_splits_from_mirror(shared_mirror):
    train_ds, test_ds = data.load_dataset("cwfid", "train"), data.load_dataset("cwfid", "test")
    # the official split lists image 28 in both; it stays in test only
    assert (len(train_ds), len(test_ds)) == (39, 21)
    assert 28 in test_ds.ids and 28 not in train_ds.ids and not set(train_ds.ids) & set(test_ds.ids)
    assert train_ds.classes == ["soil", "crop", "weed"]
    image, mask = test_ds[test_ds.ids.index(1)]
    assert image.shape == (3, 966, 1296) and image.dtype == torch.uint8
    assert mask.shape == (966, 1296) and mask.dtype == torch.int64
    # image 001's annotation: 1047760 soil, 30589 crop and 173587 weed pixels (counted with PIL)
    assert torch.bincount(mask.reshape(-1), minlength=3).tolist() == [1047760, 30589, 173587]


def test_cwfid_transforms_move_image_and_mask_together(shared_mirror):
    from torchvision.transforms import v2
    flip = data.load_dataset("cwfid", "test", transform=v2.RandomHorizontalFlip(p=1.0))
    plain = data.load_dataset("cwfid", "test")
    (x_f, m_f), (x, m) = flip[0], plain[0]
    assert torch.equal(x_f, x.flip(-1)) and torch.equal(m_f, m.flip(-1))
    crop = data.load_dataset("cwfid", "test", transform=v2.Resize((96, 128)))
    x_r, m_r = crop[0]
    assert x_r.shape == (3, 96, 128) and m_r.shape == (96, 128)
    assert set(m_r.unique().tolist()) <= {0, 1, 2}   # nearest-neighbour: no blended labels


def test_raccoon_splits_and_boxes_from_mirror(shared_mirror):
    from torchvision import tv_tensors
    train_ds, test_ds = data.load_dataset("raccoon", "train"), data.load_dataset("raccoon", "test")
    assert (len(train_ds), len(test_ds)) == (160, 40) and not set(train_ds.files) & set(test_ds.files)
    assert sum(len(a["boxes"]) for a in train_ds.annotations.values()) == 173
    assert sum(len(a["boxes"]) for a in test_ds.annotations.values()) == 44
    # raccoon-17.jpg: 259x194, one box (95, 60, 167, 118) in labels/train_labels.csv
    image, target = train_ds[train_ds.files.index("raccoon-17.jpg")]
    assert image.shape == (3, 194, 259)
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    assert target["boxes"].tolist() == [[95.0, 60.0, 167.0, 118.0]] and target["labels"].tolist() == [1]
    from torchvision.transforms import v2
    flipped = data.load_dataset("raccoon", "train", transform=v2.RandomHorizontalFlip(p=1.0))
    _, t = flipped[train_ds.files.index("raccoon-17.jpg")]
    assert t["boxes"].tolist() == [[259.0 - 167, 60.0, 259.0 - 95, 118.0]]   # the box moves with the image
    images, targets = data.collate_detection([train_ds[0], train_ds[1]])
    assert len(images) == 2 and all("boxes" in t for t in targets)


def test_magnetic_tiles_with_masks_from_mirror(shared_mirror):
    ds = data.load_dataset("magnetic_tile_defects", "all", masks=True)
    assert len(ds) == 1344 and ds.classes == ["background", "defect"]
    counts = {c: ds.defect_classes.count(c) for c in set(ds.defect_classes)}
    assert counts == {"Free": 952, "Blowhole": 115, "Uneven": 103, "Break": 85, "Crack": 57, "Fray": 32}
    assert set(ds.exposures) == set(range(7))
    free, crack = ds.defect_classes.index("Free"), ds.defect_classes.index("Crack")
    image, mask = ds[free]
    assert mask.shape == image.shape[1:] and int(mask.sum()) == 0   # a defect-free tile has an empty mask
    _, mask = ds[crack]
    assert set(mask.unique().tolist()) == {0, 1} and 0 < int(mask.sum()) < mask.numel() // 2


def test_magnetic_tiles_know_which_tile_each_image_shows(shared_mirror):
    ds = data.load_dataset("magnetic_tile_defects", "all", check="header")
    ids, y = np.asarray(ds.tile_ids), np.asarray(ds.targets)
    assert len(ids) == len(y) == 1344 and len(ds.exposures) == 1344
    # each tile belongs to one class and shows each exposure at most once
    assert all(len(set(y[ids == t])) == 1 for t in np.unique(ids))
    assert all(len(set(np.asarray(ds.exposures)[ids == t])) == (ids == t).sum() for t in np.unique(ids))
    tiles_per_class = [len(np.unique(ids[y == c])) for c in range(6)]
    assert tiles_per_class == [22, 16, 12, 7, 172, 17]
    with_masks = data.load_dataset("magnetic_tile_defects", "all", masks=True)
    assert len(np.unique(with_masks.tile_ids)) == 246


def test_tile_ids_need_the_dataset_file_names():
    from tlhelpers.data.catalog import tile_ids
    with pytest.raises(ValueError, match="expN_num_<frame>"):
        tile_ids(["MT_Free/Imgs/exp1_tile.jpg"])
    with pytest.raises(ValueError, match="exposure"):
        tile_ids(["MT_Free/Imgs/exposure1_num_2.jpg"])
    # a new tile when the exposure does not rise, or the frames are far apart
    names = ["exp1_num_10", "exp2_num_30", "exp2_num_50", "exp3_num_70", "exp4_num_900"]
    assert tile_ids([f"MT_Free/Imgs/{n}.jpg" for n in names]).tolist() == [0, 0, 1, 1, 2]


def test_grouped_split_keeps_groups_whole_and_classes_in_both_parts():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 6)
    y = np.repeat(rng.permutation([0] * 45 + [1] * 10 + [2] * 5), 6)
    for seed in range(3):
        tr, va = data.split_indices(y, val_fraction=0.25, seed=seed, groups=groups)
        assert set(groups[tr]).isdisjoint(groups[va]) and len(tr) + len(va) == len(y)
        assert set(y[va]) == set(y[tr]) == {0, 1, 2}
        assert abs(len(va) / len(y) - 0.25) < 0.05
    assert not np.array_equal(data.split_indices(y, seed=0, groups=groups)[1],
                              data.split_indices(y, seed=1, groups=groups)[1])
    tr, va = data.split_indices(y, val_fraction=0.25, groups=groups, stratify=False)
    assert set(groups[tr]).isdisjoint(groups[va])
    with pytest.raises(ValueError, match="one group id per example"):
        data.split_indices(y, groups=groups[:-1])
    with pytest.raises(ValueError, match="class 2 has 1 group"):
        data.split_indices([0, 0, 1, 1, 2, 2], groups=[0, 1, 2, 3, 4, 4])

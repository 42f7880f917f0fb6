import os
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, reason: str) -> None:
    """Skip locally when a resource is missing; in CI a missing resource is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def _private_model_caches(tmp_path_factory):
    """Weights a test makes or downloads never land in the user's torch-hub or Hugging Face caches."""
    root = tmp_path_factory.mktemp("model_caches")
    saved = {k: os.environ.get(k) for k in ("TORCH_HOME", "HF_HOME")}
    os.environ["TORCH_HOME"], os.environ["HF_HOME"] = str(root / "torch"), str(root / "hf")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def image_tree(tmp_path):
    """root/<class>/ with a few real small images of several modes."""
    root = tmp_path / "imgs"
    for c, color in [("ants", (200, 30, 30)), ("bees", (30, 30, 200))]:
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (16, 12), color).save(root / c / f"{c}{i}.jpg")
    return root


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """Empty cache, no mirror, offline."""
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TLHELPERS_DATA_MIRROR", raising=False)
    monkeypatch.setenv("TLHELPERS_OFFLINE", "1")
    return tmp_path


@pytest.fixture
def shared_mirror():
    value = os.environ.get("TLHELPERS_DATA_MIRROR", "")
    dirs = [Path(p) for p in value.split(os.pathsep) if p]
    hit = [d for d in dirs if (d / "hymenoptera_data").is_dir()]
    need(bool(hit), "TLHELPERS_DATA_MIRROR with hymenoptera_data/ (CI points it at ../shared/datasets)")
    return hit[0]

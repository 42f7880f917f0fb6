"""The "Your own data" page runs as printed, on a small folder of real photos (scikit-image's)."""
import re

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT


def photos(n_per_class=6, seed=0):
    """Three classes of real photos (crops of three scikit-image pictures), a few per class."""
    skimage_data = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(seed)
    sources = {"cat": skimage_data.chelsea(), "coffee": skimage_data.coffee(), "rocket": skimage_data.rocket()}
    out = {}
    for name, img in sources.items():
        h, w = img.shape[:2]
        crops = []
        for _ in range(n_per_class):
            y, x = rng.integers(0, h // 3), rng.integers(0, w // 3)
            crops.append(Image.fromarray(img[y:y + 2 * h // 3, x:x + 2 * w // 3]))
        out[name] = crops
    return out


@pytest.mark.parametrize("page", ["book/own_data.md", "README.md"])
def test_own_data_code_runs_as_printed(page, tmp_path, monkeypatch):
    text = (ROOT / page).read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))
    assert "data.ImageFolder(root" in code and "predict_folder" in code
    for cls, images in photos().items():
        (tmp_path / "my_photos" / cls).mkdir(parents=True)
        for i, im in enumerate(images):
            im.save(tmp_path / "my_photos" / cls / f"{i:03d}.jpg")
    (tmp_path / "my_photos" / "cat" / ".ipynb_checkpoints").mkdir()
    images = photos(seed=1)
    (tmp_path / "new_photos").mkdir()
    for cls in images:
        images[cls][0].save(tmp_path / "new_photos" / f"new_{cls}.png")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "own_data.md", "exec"), scope)  # noqa: S102 (the book's own page)
    assert scope["classes"] == ["cat", "coffee", "rocket"]
    assert (tmp_path / "my_model.pt").exists()
    if page == "README.md":
        return
    assert len(scope["history"]) == 3
    assert set(scope["report"].index) >= {"cat", "coffee", "rocket"}
    pred = scope["predictions"]
    assert pred["file"].tolist() == ["new_cat.png", "new_coffee.png", "new_rocket.png"]
    assert list(pred.columns[-3:]) == ["cat", "coffee", "rocket"]

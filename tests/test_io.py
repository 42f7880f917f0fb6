import io
import tarfile
import zipfile

import pytest

from tlhelpers.io import atomic_write, download, safe_extract, save_torch, sha256_file, tree_digest


def test_atomic_write_keeps_old_content_on_error(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p, mode="w") as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]  # no temp file left


def test_save_torch_roundtrip(tmp_path):
    import torch
    save_torch({"a": torch.arange(3)}, tmp_path / "x" / "t.pt")
    assert torch.load(tmp_path / "x" / "t.pt")["a"].tolist() == [0, 1, 2]


def test_download_verifies_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    good = sha256_file(src)
    out = download(src.as_uri(), tmp_path / "out" / "a.bin", sha256=good, progress=False)
    assert out.read_bytes() == b"payload"
    with pytest.raises(ValueError, match="checksum mismatch"):
        download(src.as_uri(), tmp_path / "out" / "b.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "out" / "b.bin").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.bin"]


def test_safe_extract_refuses_parent_paths_in_zip(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("ok.txt", "fine")
        f.writestr("../escaped.txt", "bad")
    with pytest.raises(ValueError, match="outside"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "ok.txt").exists()  # refused before anything was written


def test_safe_extract_refuses_absolute_and_link_escape_in_tar(tmp_path):
    for name, kind in [("/etc/evil", "file"), ("link", "symlink")]:
        t = tmp_path / f"evil-{kind}.tar"
        with tarfile.open(t, "w") as f:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
                f.addfile(info)
            else:
                info.size = 1
                f.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(ValueError, match="outside"):
            safe_extract(t, tmp_path / f"out-{kind}")


def test_safe_extract_rejects_non_archives(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        safe_extract(p, tmp_path / "out")


def test_tree_digest_ignores_mirror_notes_and_sees_changes(tmp_path):
    (tmp_path / "a").write_text("1")
    d1 = tree_digest(tmp_path)
    (tmp_path / "MANIFEST.txt").write_text("notes")
    assert tree_digest(tmp_path) == d1
    (tmp_path / "a").write_text("2")
    assert tree_digest(tmp_path) != d1

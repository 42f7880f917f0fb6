"""Hostile inputs for tlhelpers.io and tlhelpers.data: archives, downloads, copies, images, own folders.

Each test says in a comment what it attacks. Every case ends either in a clear
error (what was wrong, the value seen, what to do) or is handled correctly.
"""
import http.server
import io
import os
import shutil
import stat
import struct
import tarfile
import threading
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tlhelpers import data
from tlhelpers import io as tio
from tlhelpers.data import DatasetInfo, DatasetNotFoundError, ImageFolder, Source, registry
from tlhelpers.io import download, move_into_place, safe_extract, sha256_file, tree_digest

MIRROR = Path(os.environ.get("TLHELPERS_DATA_MIRROR", "/nonexistent").split(os.pathsep)[0])


def _tar(path, members):
    """members: list of (TarInfo kwargs, bytes or None)."""
    with tarfile.open(path, "w") as t:
        for kw, payload in members:
            info = tarfile.TarInfo(kw.pop("name"))
            for k, v in kw.items():
                setattr(info, k, v)
            if payload is not None:
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
            else:
                t.addfile(info)
    return path


def _outside_files(tmp_path, keep):
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in keep)


# =============================================================== 1. archives


def test_tar_symlink_chain_cannot_escape(tmp_path):
    # attacks: a -> ., then a/b -> .., then b/file writes into the parent of the target
    t = _tar(tmp_path / "chain.tar", [
        (dict(name="a", type=tarfile.SYMTYPE, linkname="."), None),
        (dict(name="a/b", type=tarfile.SYMTYPE, linkname=".."), None),
        (dict(name="b/escaped.txt"), b"pwned"),
    ])
    with pytest.raises(ValueError, match="chain.tar"):
        safe_extract(t, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out").exists()


def test_tar_hardlink_resolved_from_archive_root_cannot_overwrite_outside(tmp_path):
    # attacks: hard link sub/h -> ../victim.txt (inside when read from sub/, outside from the root),
    # then a file written to sub/h truncates the linked victim
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    shutil.copy(victim, tmp_path / "work" / "victim.txt")
    t = _tar(tmp_path / "hard.tar", [
        (dict(name="sub", type=tarfile.DIRTYPE), None),
        (dict(name="sub/h", type=tarfile.LNKTYPE, linkname="../victim.txt"), None),
        (dict(name="sub/h"), b"pwned"),
    ])
    with pytest.raises(ValueError, match="outside|hard link"):
        safe_extract(t, out)
    assert (tmp_path / "work" / "victim.txt").read_text() == "precious"


def test_tar_hardlink_to_a_file_not_in_the_archive_is_refused(tmp_path):
    # attacks: hard link to a host file by a relative name that no member provides
    t = _tar(tmp_path / "h.tar", [(dict(name="h", type=tarfile.LNKTYPE, linkname="etc/passwd"), None)])
    with pytest.raises(ValueError, match="names no earlier file"):
        safe_extract(t, tmp_path / "out")


def test_tar_absolute_symlink_is_refused(tmp_path):
    # attacks: a symlink to /etc followed by a member written through it
    t = _tar(tmp_path / "abs.tar", [
        (dict(name="etc", type=tarfile.SYMTYPE, linkname=str(tmp_path)), None),
        (dict(name="etc/written.txt"), b"x"),
    ])
    with pytest.raises(ValueError, match="outside"):
        safe_extract(t, tmp_path / "out")
    assert not (tmp_path / "written.txt").exists()


def test_tar_write_through_an_inside_symlink_is_refused(tmp_path):
    # attacks: writing through an archive's own symlink (the building block of link chains)
    t = _tar(tmp_path / "via.tar", [
        (dict(name="real", type=tarfile.DIRTYPE), None),
        (dict(name="alias", type=tarfile.SYMTYPE, linkname="real"), None),
        (dict(name="alias/f.txt"), b"x"),
    ])
    with pytest.raises(ValueError, match="through"):
        safe_extract(t, tmp_path / "out")


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_tar_special_files_are_refused(tmp_path, kind):
    # attacks: device nodes and FIFOs (a FIFO named like an image hangs any reader)
    t = _tar(tmp_path / "dev.tar", [(dict(name="ok.txt"), b"x"),
                                    (dict(name="dev", type=kind, devmajor=1, devminor=3), None)])
    with pytest.raises(ValueError, match="special file"):
        safe_extract(t, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written


def test_tar_setuid_and_world_writable_bits_are_dropped(tmp_path):
    # attacks: a setuid, world-writable executable planted by the archive
    t = _tar(tmp_path / "suid.tar", [(dict(name="run.sh", mode=0o6777), b"#!/bin/sh\n")])
    mode = (safe_extract(t, tmp_path / "out") / "run.sh").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH | stat.S_IWGRP)


def test_tar_without_data_filter_fails_clearly(tmp_path, monkeypatch):
    # attacks: an old Python whose tarfile cannot filter members
    t = _tar(tmp_path / "ok.tar", [(dict(name="a.txt"), b"x")])
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(RuntimeError, match="Python >= 3.10.12"):
        safe_extract(t, tmp_path / "out")


@pytest.mark.parametrize("name", ["/abs.txt", "..\\evil.txt", "C:/evil.txt", "a/../../evil.txt"])
def test_zip_absolute_backslash_drive_and_parent_names_are_refused(tmp_path, name):
    # attacks: zip-slip spellings (absolute, Windows backslash, drive letter, nested ..)
    z = tmp_path / "slip.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("ok.txt", "fine")
        f.writestr(zipfile.ZipInfo(name), "bad")
    with pytest.raises(ValueError, match="outside"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_symlink_entry_is_refused(tmp_path):
    # attacks: a zip entry marked as a symbolic link in its external attributes
    z = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(z, "w") as f:
        f.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="symbolic link"):
        safe_extract(z, tmp_path / "out")


def test_zip_with_corrupt_member_names_the_archive(tmp_path):
    # attacks: a zip whose member bytes were damaged (CRC mismatch)
    z = tmp_path / "crc.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as f:
        f.writestr("a.txt", "A" * 1000)
    raw = bytearray(z.read_bytes())
    raw[raw.index(b"AAAA") + 10] ^= 0xFF
    z.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"crc\.zip.*corrupt"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_tar_gz_names_the_archive(tmp_path):
    # attacks: a .tar.gz cut in the middle (an interrupted copy)
    t = tmp_path / "cut.tar.gz"
    with tarfile.open(t, "w:gz") as f:
        payload = os.urandom(200_000)
        info = tarfile.TarInfo("big.bin")
        info.size = len(payload)
        f.addfile(info, io.BytesIO(payload))
    t.write_bytes(t.read_bytes()[:60_000])
    with pytest.raises(ValueError, match=r"cut\.tar\.gz"):
        safe_extract(t, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# =============================================================== 2. downloads


class _Server:
    """A local HTTP server whose answers the test sets: (status, headers, body, bytes actually sent)."""

    def __init__(self):
        self.routes = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                status, headers, body, send = routes.get(self.path, (404, {}, b"", None))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body[:send] if send is not None else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_download_cut_at_half_is_not_saved(server, tmp_path):
    # attacks: a connection that drops at 50 % with no checksum to catch it
    body = os.urandom(100_000)
    server.routes["/f.bin"] = (200, {"Content-Length": str(len(body))}, body, len(body) // 2)
    with pytest.raises(OSError, match="received 50000 of 100000 bytes"):
        download(server.url + "/f.bin", tmp_path / "out" / "f.bin", progress=False)
    assert list((tmp_path / "out").iterdir()) == []  # neither the file nor a temporary one


def test_download_with_malformed_content_length_still_works(server, tmp_path):
    # attacks: a garbage Content-Length header (must not crash the parser)
    server.routes["/g"] = (200, {"Content-Length": "lots"}, b"payload", None)
    assert download(server.url + "/g", tmp_path / "g", progress=False).read_bytes() == b"payload"


def test_download_http_error_names_the_url(server, tmp_path):
    # attacks: a moved or deleted source (HTTP 404)
    with pytest.raises(OSError, match="/missing.zip"):
        download(server.url + "/missing.zip", tmp_path / "m.zip", progress=False)
    assert not (tmp_path / "m.zip").exists()


def test_keyboard_interrupt_mid_download_leaves_no_temp_file(monkeypatch, tmp_path):
    # attacks: Ctrl-C while the body streams in
    class Response:
        headers = {"Content-Length": "20"}
        calls = 0

        def read(self, n):
            Response.calls += 1
            if Response.calls > 1:
                raise KeyboardInterrupt
            return b"0123456789"

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(tio.urllib.request, "urlopen", lambda *a, **k: Response())
    with pytest.raises(KeyboardInterrupt):
        download("https://example.invalid/x.bin", tmp_path / "dl" / "x.bin", progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


@pytest.fixture
def online(isolated_env, monkeypatch):
    monkeypatch.delenv("TLHELPERS_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield isolated_env
    for k in [k for k in data._REGISTRY if k.startswith("hostile")]:
        del data._REGISTRY[k]


def _register(name, url, digest=None, marker="pkg/ready.txt", extract=True):
    info = DatasetInfo(name=name, folder=name, description="t", licence="t", citation="t",
                       sources=(Source(url, extract=extract),), marker=marker, digest=digest)
    data._REGISTRY[name] = info
    return info


def test_dataset_download_cut_short_is_not_cached(online, server):
    # attacks: a plain data file (no archive to fail, no checksum) whose download stops at 50 %
    body = os.urandom(100_000)
    server.routes["/table.csv"] = (200, {"Content-Length": str(len(body))}, body, len(body) // 2)
    _register("hostile_cut", server.url + "/table.csv", marker="table.csv", extract=False)
    with pytest.raises(DatasetNotFoundError, match="cut short"):
        data.dataset_dir("hostile_cut", progress=False)
    assert list((online / "cache" / "datasets").iterdir()) == []


@pytest.mark.parametrize("kind", ["crc", "html"])
def test_dataset_download_of_corrupt_archive_names_the_file(online, server, kind):
    # attacks: a zip damaged in transit (CRC error), or an HTML error page served as the zip
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("pkg/ready.txt", "yes")
        z.writestr("pkg/data.txt", "D" * 5000)
    body = bytearray(buf.getvalue())
    body[body.index(b"DDDD") + 100] ^= 0xFF
    if kind == "html":
        body = bytearray(b"<html>rate limited</html>")
    server.routes["/e.zip"] = (200, {}, bytes(body), None)
    _register("hostile_corrupt", server.url + "/e.zip")
    with pytest.raises(DatasetNotFoundError, match=r"e\.zip.*(corrupt|neither a zip nor a tar)"):
        data.dataset_dir("hostile_corrupt", progress=False)
    assert list((online / "cache" / "datasets").iterdir()) == []


def test_keyboard_interrupt_during_dataset_extraction_cleans_staging(online, tmp_path, monkeypatch):
    # attacks: Ctrl-C after the download, while the archive is being extracted
    z = tmp_path / "k.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("pkg/ready.txt", "yes")
    _register("hostile_ctrl_c", z.as_uri())

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "safe_extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.dataset_dir("hostile_ctrl_c", progress=False)
    assert list((online / "cache" / "datasets").iterdir()) == []


# =============================================================== 3. resolving copies


def _fresh_manifests():
    registry._read_manifest.cache_clear()


@pytest.fixture
def two_mirrors(tmp_path, monkeypatch):
    """Two mirrors each holding a copy of sst2 (3 files, with a real manifest); an empty cache."""
    need_mirror()
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    for m in (m1, m2):
        shutil.copytree(MIRROR / "sst2", m / "sst2")
    monkeypatch.setenv("TLHELPERS_DATA_MIRROR", os.pathsep.join([str(m1), str(m2)]))
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TLHELPERS_OFFLINE", "1")
    return m1, m2


def need_mirror():
    from conftest import need
    need((MIRROR / "sst2").is_dir(), "TLHELPERS_DATA_MIRROR with sst2/ (CI points it at ../shared/datasets)")


def test_mirror_with_marker_but_missing_file_falls_through(two_mirrors):
    # attacks: an incomplete first mirror that still has its marker file
    m1, m2 = two_mirrors
    (m1 / "sst2" / "stsa.binary.train").unlink()
    with pytest.warns(UserWarning, match=r"stsa\.binary\.train \(missing\)"):
        assert data.dataset_dir("sst2") == m2 / "sst2"


def test_mirror_without_marker_falls_through(two_mirrors):
    # attacks: a half-copied first mirror (marker missing, other files present)
    m1, m2 = two_mirrors
    (m1 / "sst2" / "stsa.binary.test").unlink()
    with pytest.warns(UserWarning, match="has no 'stsa.binary.test'"):
        assert data.dataset_dir("sst2") == m2 / "sst2"


def test_truncated_file_in_only_mirror_is_named_with_what_to_do(two_mirrors, monkeypatch):
    # attacks: a truncated file (size check, every call) in the only copy
    m1, _ = two_mirrors
    monkeypatch.setenv("TLHELPERS_DATA_MIRROR", str(m1))
    f = m1 / "sst2" / "stsa.binary.dev"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DatasetNotFoundError) as err:
        data.dataset_dir("sst2")
    msg = str(err.value)
    assert "stsa.binary.dev (1000 bytes, expected 94400" in msg and "sha256sum -c SHA256SUMS" in msg


def test_bit_flip_in_mirror_is_caught_on_first_use_and_next_mirror_used(two_mirrors):
    # attacks: same size, one flipped bit (only a content hash sees it)
    m1, m2 = two_mirrors
    f = m1 / "sst2" / "stsa.binary.dev"
    raw = bytearray(f.read_bytes())
    raw[500] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"checksum mismatch.*stsa\.binary\.dev"):
        assert data.dataset_dir("sst2") == m2 / "sst2"


def test_bit_flip_in_cache_after_first_use_is_caught(tmp_path, monkeypatch):
    # attacks: a cached file rewritten (flipped bit) after its content was recorded as good
    need_mirror()
    cache = tmp_path / "cache"
    shutil.copytree(MIRROR / "sst2", cache / "datasets" / "sst2")
    monkeypatch.setenv("TLHELPERS_CACHE", str(cache))
    monkeypatch.delenv("TLHELPERS_DATA_MIRROR", raising=False)
    monkeypatch.setenv("TLHELPERS_OFFLINE", "1")
    assert data.dataset_dir("sst2") == cache / "datasets" / "sst2"  # hashed once, stamp written
    assert list((cache / "datasets" / ".verified").iterdir())
    f = cache / "datasets" / "sst2" / "stsa.binary.train"
    raw = bytearray(f.read_bytes())
    raw[1234] ^= 0x40
    f.write_bytes(bytes(raw))
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # even on coarse-clock file systems
    with pytest.raises(DatasetNotFoundError, match=r"checksum mismatch.*stsa\.binary\.train.*delete"):
        data.dataset_dir("sst2")


def test_silent_corruption_with_unchanged_mtime_needs_verify_true(tmp_path, monkeypatch):
    # attacks: disk rot that keeps size and mtime: only verify=True re-hashes (documented)
    need_mirror()
    cache = tmp_path / "cache"
    shutil.copytree(MIRROR / "sst2", cache / "datasets" / "sst2")
    monkeypatch.setenv("TLHELPERS_CACHE", str(cache))
    monkeypatch.delenv("TLHELPERS_DATA_MIRROR", raising=False)
    data.dataset_dir("sst2")
    f = cache / "datasets" / "sst2" / "stsa.binary.test"
    st = f.stat()
    raw = bytearray(f.read_bytes())
    raw[10] ^= 0x01
    f.write_bytes(bytes(raw))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert data.dataset_dir("sst2")  # cheap path trusts the recorded hash
    with pytest.raises(DatasetNotFoundError, match="stsa.binary.test"):
        data.dataset_dir("sst2", verify=True)


def test_stamp_is_never_written_into_a_mirror(two_mirrors):
    # attacks: a read-only shared mirror (nothing may be written there)
    m1, _ = two_mirrors
    before = sorted(p.relative_to(m1).as_posix() for p in m1.rglob("*"))
    data.dataset_dir("sst2", verify=True)
    assert sorted(p.relative_to(m1).as_posix() for p in m1.rglob("*")) == before


def test_move_into_place_race_with_a_winner_is_success(tmp_path, monkeypatch):
    # attacks: another process renames its finished copy into place between our check and our rename
    src, dest = tmp_path / "mine", tmp_path / "dataset"
    src.mkdir()
    (src / "a").write_text("mine")
    real_replace = os.replace

    class RacingOs:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def replace(a, b):
            if Path(b) == dest and not dest.exists():
                dest.mkdir()
                (dest / "a").write_text("theirs")
            return real_replace(a, b)

    monkeypatch.setattr(tio, "os", RacingOs())
    assert move_into_place(src, dest) == dest
    assert (dest / "a").read_text() == "theirs" and not src.exists()


def test_move_into_place_replaces_an_incomplete_destination(tmp_path):
    # attacks: a stale half-copied destination left by an older version or a crash
    src, dest = tmp_path / "new", tmp_path / "ds"
    src.mkdir()
    (src / "ready").write_text("y")
    dest.mkdir()
    (dest / "junk").write_text("x")
    move_into_place(src, dest, is_complete=lambda d: (d / "ready").exists())
    assert sorted(p.name for p in dest.iterdir()) == ["ready"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_concurrent_downloads_of_one_dataset_both_succeed(online, tmp_path):
    # attacks: two workers resolving the same dataset at once ("Directory not empty")
    z = tmp_path / "c.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("pkg/ready.txt", "yes")
        for i in range(50):
            f.writestr(f"pkg/f{i}.txt", str(i))
    _register("hostile_race", z.as_uri())
    results, errors = [], []
    barrier = threading.Barrier(2)

    def work():
        barrier.wait()
        try:
            results.append(data.dataset_dir("hostile_race", progress=False))
        except Exception as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert [p.name for p in (online / "cache" / "datasets").iterdir() if not p.name.startswith(".verified")] \
        == ["hostile_race"]


def test_damaged_cache_copy_is_replaced_by_a_new_download(online, tmp_path):
    # attacks: a cache copy damaged after download while the source is reachable
    z = tmp_path / "r.zip"
    ref = tmp_path / "ref" / "pkg"
    ref.mkdir(parents=True)
    (ref / "ready.txt").write_text("yes")
    (ref / "a.txt").write_text("aaaa")
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("pkg/ready.txt", "yes")
        f.writestr("pkg/a.txt", "aaaa")
    _register("hostile_repair", z.as_uri(), digest=tree_digest(ref.parent))
    path = data.dataset_dir("hostile_repair", progress=False)
    (path / "pkg" / "a.txt").write_text("aaab")
    os.utime(path / "pkg" / "a.txt", ns=(1, 1))
    with pytest.warns(UserWarning, match="checksum mismatch.*using a new download"):
        assert data.dataset_dir("hostile_repair", progress=False) == path
    assert (path / "pkg" / "a.txt").read_text() == "aaaa"


def test_manifests_match_registered_digests_and_pinned_sources():
    # attacks: a manifest, digest or source sha256 that drifted apart (a second copy gone stale)
    for name in data.list_datasets():
        info = data.dataset_info(name)
        manifest = registry._manifest(info)
        if info.digest is None:
            continue
        assert manifest is not None, f"{name}: no manifests/{info.folder}.txt matching its digest"
        for src in info.sources:
            if src.sha256 and not src.extract:
                rel = src.dest or src.url.rsplit("/", 1)[-1]
                assert manifest[rel][1] == src.sha256, (name, rel)


# =============================================================== 4. images


def _png16(path, array):
    Image.fromarray(array.astype(np.uint16)).save(path)
    return path


def test_16bit_png_is_scaled_not_saturated(tmp_path):
    # attacks: a 16-bit grayscale PNG ("I;16"); PIL's own convert clips everything above 255
    p = _png16(tmp_path / "g16.png", np.array([[0, 257 * 64, 257 * 128, 65535]]))
    assert Image.open(p).mode == "I;16"
    assert np.asarray(data.load_image(p))[0, :, 0].tolist() == [0, 64, 128, 255]


def test_32bit_integer_image_is_scaled_as_16bit(tmp_path):
    # attacks: mode "I" (how some tools store 16-bit data)
    p = tmp_path / "i.tif"
    Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.int32)).save(p)
    assert Image.open(p).mode == "I"
    assert np.asarray(data.load_image(p))[0, :, 0].tolist() == [0, 100, 255]


def test_float_tiff_is_scaled(tmp_path):
    # attacks: a float TIFF in [0, 1] (mode "F"), which PIL's convert turns almost black
    p = tmp_path / "f.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32)).save(p)
    assert np.asarray(data.load_image(p))[0, :, 0].tolist() == [0, 128, 255, 0]


def test_cmyk_jpeg_is_converted(tmp_path):
    # attacks: a CMYK JPEG (print workflows)
    p = tmp_path / "c.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p)  # pure red in CMYK
    r, g, b = data.load_image(p).getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied(tmp_path):
    # attacks: a phone photo stored sideways with an EXIF rotation tag
    p = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20)).save(p, exif=exif)
    assert data.load_image(p).size == (20, 40)


def test_pixel_limit_is_a_clear_error_and_folder_reports_it(image_tree):
    # attacks: an image over a configured pixel limit
    big = image_tree / "ants" / "big.png"
    Image.new("RGB", (100, 100)).save(big)
    with pytest.raises(data.ImageTooLargeError, match=r"big\.png has 100x100 = 10,000 pixels"):
        data.load_image(big, max_pixels=5000)
    with pytest.warns(UserWarning, match="big.png"):
        ds = ImageFolder(image_tree, max_pixels=5000)
    assert [Path(p).name for p, _ in ds.skipped] == ["big.png"]


def test_pil_decompression_bomb_warning_becomes_an_error(tmp_path, monkeypatch):
    # attacks: an image above PIL's MAX_IMAGE_PIXELS (PIL only warns)
    p = tmp_path / "bomb.png"
    Image.new("L", (30, 30)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning escapes either
        with pytest.raises(data.ImageTooLargeError, match="bomb.png"):
            data.load_image(p)


def test_forged_huge_png_header_is_refused_before_decoding(tmp_path):
    # attacks: a tiny file whose header claims 60000 x 60000 pixels (a decompression bomb)
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    p = tmp_path / "forged.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                  + chunk(b"IEND", b""))
    with pytest.raises(data.ImageTooLargeError, match="forged.png"):
        data.load_image(p)


def test_hidden_files_and_folders_are_skipped_at_every_depth(image_tree):
    # attacks: Jupyter's .ipynb_checkpoints copies, a hidden class folder, macOS __MACOSX and ._ files
    ck = image_tree / "ants" / "sub" / ".ipynb_checkpoints"
    ck.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(ck / "ants0-checkpoint.jpg")
    (image_tree / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (8, 8)).save(image_tree / ".ipynb_checkpoints" / "x.jpg")
    (image_tree / "__MACOSX" / "ants").mkdir(parents=True)
    (image_tree / "__MACOSX" / "ants" / "._ants0.jpg").write_bytes(b"\0\5\x16\7")
    (image_tree / "bees" / "._bees0.jpg").write_bytes(b"\0\5\x16\7")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = ImageFolder(image_tree)
    assert ds.classes == ["ants", "bees"] and len(ds) == 8 and ds.skipped == []


def test_truncated_empty_and_damaged_jpegs_are_reported_not_dropped(image_tree):
    # attacks: a truncated JPEG, an empty file and a JPEG with a damaged header
    good = (image_tree / "ants" / "ants0.jpg").read_bytes()
    (image_tree / "ants" / "cut.jpg").write_bytes(good[: len(good) // 2])
    (image_tree / "ants" / "empty.jpg").write_bytes(b"")
    flipped = bytearray(good)
    flipped[2:6] = b"\x00\x00\x00\x00"  # destroy the first marker segment
    (image_tree / "bees" / "flip.jpg").write_bytes(bytes(flipped))
    with pytest.warns(UserWarning) as rec:
        ds = ImageFolder(image_tree)
    msg = str(rec[0].message)
    assert "skipped 3 file(s)" in msg and all(n in msg for n in ["cut.jpg", "empty.jpg", "flip.jpg"])
    assert {Path(p).name for p, _ in ds.skipped} == {"cut.jpg", "empty.jpg", "flip.jpg"}


def test_fifo_named_like_an_image_does_not_hang(image_tree):
    # attacks: a FIFO called x.jpg (opening it for reading would block forever)
    os.mkfifo(image_tree / "ants" / "pipe.jpg")
    with pytest.warns(UserWarning, match="pipe.jpg"):
        ds = ImageFolder(image_tree)
    assert "not a regular file" in dict(ds.skipped)[str(image_tree / "ants" / "pipe.jpg")]


def test_symlink_loop_inside_a_class_folder_terminates(image_tree):
    # attacks: a symbolic link to its own parent folder (endless recursion)
    (image_tree / "ants" / "loop").symlink_to(image_tree / "ants")
    ds = ImageFolder(image_tree)
    assert len(ds) == 8


def _mini_tiles(root, broken=False):
    for c in ["Blowhole", "Free"]:
        d = root / f"MT_{c}" / "Imgs"
        d.mkdir(parents=True)
        Image.new("L", (8, 8), 90).save(d / "exp1_num_1.jpg")
        Image.new("L", (8, 8), 0).save(d / "exp1_num_1.png")
    if broken:
        (root / "MT_Free" / "Imgs" / "exp2_num_2.jpg").write_bytes(b"\xff\xd8broken")
    return root


def test_magnetic_loader_is_quiet_about_masks_but_reports_broken_jpegs(tmp_path):
    # attacks: a broken JPEG hidden among the intentionally skipped mask PNGs
    from tlhelpers.data import catalog
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = catalog._magnetic_tiles(_mini_tiles(tmp_path / "ok"), "all", None)
    assert ds.classes == ["Blowhole", "Free"] and len(ds.skipped) == 2
    with pytest.warns(UserWarning, match="exp2_num_2.jpg") as rec:
        catalog._magnetic_tiles(_mini_tiles(tmp_path / "bad", broken=True), "all", None)
    assert ".png" not in str(rec[0].message)


def test_hymenoptera_loader_reports_a_broken_jpeg_but_not_the_placeholder_gif(image_tree):
    # attacks: a damaged photo in a copy of the tutorial's folder (the .gif placeholder is expected)
    split = image_tree.parent / "hymenoptera_data" / "train"
    split.parent.mkdir()
    shutil.copytree(image_tree, split)
    Image.new("P", (8, 8)).save(split / "ants" / "imageNotFound.gif")
    (split / "bees" / "bad.jpg").write_bytes(b"\xff\xd8nope")
    from tlhelpers.data import catalog
    with pytest.warns(UserWarning, match="bad.jpg") as rec:
        catalog._hymenoptera(image_tree.parent, "train", None)
    assert "imageNotFound" not in str(rec[0].message)


# =============================================================== 5. your own data


@pytest.fixture
def split_tree(tmp_path):
    root = tmp_path / "mydata"
    for split in ["train", "val"]:
        for c in ["cats", "dogs"]:
            (root / split / c).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / split / c / f"{i}.png")
    return root


def test_folder_above_the_splits_is_refused_with_a_hint(split_tree):
    # attacks: ImageFolder("mydata") with train/ and val/ taken as two classes
    with pytest.raises(ValueError, match=r"split folders \['train', 'val'\].*split='train'"):
        ImageFolder(split_tree)


def test_split_argument_reads_one_split_and_lists_the_others(split_tree):
    # attacks: a misspelled split name
    assert ImageFolder(split_tree, split="val").classes == ["cats", "dogs"]
    with pytest.raises(FileNotFoundError, match=r"\['train', 'val'\]"):
        ImageFolder(split_tree, split="valid")


def test_classes_missing_in_one_split_is_an_error_naming_it(split_tree):
    # attacks: a val split without one class folder (labels would silently shift)
    shutil.rmtree(split_tree / "val" / "cats")
    with pytest.raises(FileNotFoundError, match=r"\['cats'\] missing"):
        ImageFolder(split_tree / "val", classes=["cats", "dogs"])


def test_extra_folder_not_in_classes_is_an_error(split_tree):
    # attacks: a stray folder ("unsorted") that would become a class
    (split_tree / "train" / "unsorted").mkdir()
    Image.new("RGB", (8, 8)).save(split_tree / "train" / "unsorted" / "x.png")
    with pytest.raises(ValueError, match=r"\['unsorted'\] that are not in classes"):
        ImageFolder(split_tree / "train", classes=["cats", "dogs"])


def test_classes_fix_label_order_for_every_split(split_tree):
    # attacks: labels that differ between splits because their folders sort differently
    tr = ImageFolder(split_tree / "train", classes=["dogs", "cats"])
    va = ImageFolder(split_tree, split="val", classes=["dogs", "cats"])
    assert tr.class_to_idx == va.class_to_idx == {"dogs": 0, "cats": 1}
    assert all((Path(p).parent.name == "dogs") == (y == 0) for p, y in tr.samples + va.samples)


def test_load_dataset_with_a_path_points_at_image_folder(tmp_path):
    # attacks: load_dataset("/home/me/photos") instead of a registered name
    with pytest.raises(KeyError, match=r"looks like a folder.*data\.ImageFolder"):
        data.load_dataset(str(tmp_path / "photos"))
    with pytest.raises(KeyError, match="did you mean 'hymenoptera'"):
        data.load_dataset("hymenopterra")


def test_split_indices_is_stratified_seeded_and_refuses_singletons():
    # attacks: an imbalanced folder split, and a class with a single image
    y = np.array([0] * 80 + [1] * 20)
    tr, va = data.split_indices(y, val_fraction=0.25, seed=1)
    assert np.bincount(y[va]).tolist() == [20, 5] and not set(tr) & set(va)
    assert np.array_equal(va, data.split_indices(y, val_fraction=0.25, seed=1)[1])
    assert not np.array_equal(va, data.split_indices(y, val_fraction=0.25, seed=2)[1])
    with pytest.raises(ValueError, match=r"counts per class: \{0: 5, 1: 1\}"):
        data.split_indices([0] * 5 + [1], val_fraction=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        data.split_indices(y, val_fraction=1.5)


def test_split_dataset_and_image_loader_are_seeded(split_tree):
    # attacks: a validation split or batch order that changes from run to run
    ds = ImageFolder(split_tree / "train")
    a, b = data.split_dataset(ds, val_fraction=1 / 3, seed=0)
    assert len(a) == 4 and len(b) == 2 and sorted(data._targets(b)) == [0, 1]
    ds = torch.utils.data.TensorDataset(torch.arange(20))
    order = [x[0].tolist() for x in data.image_loader(ds, batch_size=5, seed=7)]
    torch.rand(3)
    assert order == [x[0].tolist() for x in data.image_loader(ds, batch_size=5, seed=7)]
    assert order != [x[0].tolist() for x in data.image_loader(ds, batch_size=5, seed=8)]


# =============================================================== 6. sources


def test_every_dataset_has_a_source_or_a_documented_reason():
    # attacks: a registry entry nobody can obtain outside the mirror
    for name in data.list_datasets():
        info = data.dataset_info(name)
        assert info.sources or len(info.source_note) > 40, name
        for src in info.sources:
            assert src.url.startswith(("https://", "http://")), (name, src.url)


def test_offline_fashion_mnist_error_says_how_to_get_it(isolated_env, monkeypatch):
    # attacks: a reader without the Debian package, offline (CI has the package: hide it)
    from tlhelpers import settings
    monkeypatch.setattr(settings, "SYSTEM_DATA_DIRS", ())
    with pytest.raises(DatasetNotFoundError, match="apt install dataset-fashion-mnist"):
        data.dataset_dir("fashion_mnist")


def test_truncated_or_foreign_idx_files_are_clear_errors(tmp_path):
    # attacks: an IDX file cut short, a gzip cut short, and an HTML page saved as .gz
    import gzip
    full = struct.pack(">HBBI", 0, 8, 1, 100) + bytes(100)
    cut = tmp_path / "cut-idx1-ubyte"
    cut.write_bytes(full[:50])
    with pytest.raises(ValueError, match=r"shape \(100,\).*truncated"):
        data.read_idx(cut)
    gz = tmp_path / "cut.gz"
    gz.write_bytes(gzip.compress(full)[:30])
    with pytest.raises(ValueError, match="cut.gz: corrupt or truncated"):
        data.read_idx(gz)
    html = tmp_path / "page"
    html.write_bytes(b"<html>")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(html)


def test_sha256_file_of_a_mirror_file_matches_its_source_pin():
    # attacks: a source URL whose pinned sha256 does not describe the mirror's unchanged copy
    need_mirror()
    info = data.dataset_info("sst2")
    for src in info.sources:
        assert sha256_file(MIRROR / "sst2" / src.url.rsplit("/", 1)[-1]) == src.sha256


def test_github_style_archive_keeps_only_the_manifest_files(online, tmp_path):
    # attacks: a source archive with a wrapper folder and extra files (a new class folder, notes)
    need_mirror()
    real = data.dataset_info("ag_news")
    z = tmp_path / "repo.zip"
    with zipfile.ZipFile(z, "w") as f:
        for p in (MIRROR / "ag_news").iterdir():
            f.write(p, f"repo-abc/data/ag_news_csv/{p.name}")  # MANIFEST.txt and SHA256SUMS too
        f.writestr("repo-abc/data/ag_news_csv/extra_class/x.csv", "not in the dataset")
        f.writestr("repo-abc/README.md", "repo notes")
    info = DatasetInfo("hostile_archive", "ag_news", "t", "t", "t",
                       (Source(z.as_uri(), subdir="repo-abc/data/ag_news_csv"),), marker=real.marker,
                       digest=real.digest)
    data._REGISTRY[info.name] = info
    path = data.dataset_dir("hostile_archive", progress=False)
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*")) == sorted(registry._manifest(real))


def test_archive_larger_than_the_free_disk_is_refused(tmp_path, monkeypatch):
    # attacks: a zip bomb (tiny archive, huge declared content) filling the disk
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr("zeros.bin", b"\0" * 5_000_000)
    monkeypatch.setattr(tio.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 1_000_000))
    with pytest.raises(ValueError, match=r"5,000,000 bytes but only 1,000,000 are free"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pneumoniamnist_loader_refuses_pickles_missing_splits_and_bad_labels(tmp_path):
    # attacks: an .npz holding a pickled object, a split that is not there, labels outside {0, 1}
    from tlhelpers.data import catalog
    ok = {"val_images": np.zeros((3, 28, 28), np.uint8), "val_labels": np.array([[0], [1], [1]], np.uint8)}
    np.savez(tmp_path / "pneumoniamnist_reconstructed.npz", **ok)
    ds = catalog._pneumoniamnist(tmp_path, "val", None)
    assert ds.targets == [0, 1, 1] and ds.classes == ["normal", "pneumonia"]
    with pytest.raises(ValueError, match="no 'test_images' array"):
        catalog._pneumoniamnist(tmp_path, "test", None)
    np.savez(tmp_path / "pneumoniamnist_reconstructed.npz", val_images=ok["val_images"],
             val_labels=np.array([[0], [2], [1]], np.uint8))
    with pytest.raises(ValueError, match="labels in"):
        catalog._pneumoniamnist(tmp_path, "val", None)
    np.savez(tmp_path / "pneumoniamnist_reconstructed.npz", val_images=np.array([{"x": 1}] * 3, dtype=object),
             val_labels=ok["val_labels"])
    with pytest.raises(ValueError, match="allow_pickle"):
        catalog._pneumoniamnist(tmp_path, "val", None)


def _cwfid_tree(root: Path, mask_rgb: np.ndarray, image_size=(6, 4), split="train: [1]\ntest: [2]\n"):
    for d in ("images", "annotations"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in (1, 2):
        Image.new("RGB", image_size, (90, 120, 60)).save(root / "images" / f"{i:03d}_image.png")
        Image.fromarray(mask_rgb).save(root / "annotations" / f"{i:03d}_annotation.png")
    (root / "train_test_split.yaml").write_text(split)


def test_cwfid_loader_refuses_unknown_colours_wrong_sizes_and_bad_splits(tmp_path):
    # attacks: a pixel painted in a colour that is no class, a mask of another size than its image,
    # a split file that is not two lists of numbers (and could hold YAML tags: it is never evaluated)
    from tlhelpers.data import catalog
    ok = np.zeros((4, 6, 3), np.uint8)
    ok[0, 0] = (0, 255, 0)
    ok[1, 2] = (255, 0, 0)
    _cwfid_tree(tmp_path, ok)
    image, mask = catalog._cwfid(tmp_path, "train", None)[0]
    assert image.shape == (3, 4, 6) and mask[0, 0] == 1 and mask[1, 2] == 2 and int(mask.sum()) == 3
    bad = ok.copy()
    bad[3, 5] = (0, 0, 255)
    _cwfid_tree(tmp_path, bad)
    with pytest.raises(ValueError, match=r"1 pixels have colour \(0, 0, 255\).*row 3, column 5"):
        catalog._cwfid(tmp_path, "test", None)[0]
    _cwfid_tree(tmp_path, ok, image_size=(8, 4))
    with pytest.raises(ValueError, match="mask is 6x4 pixels but its image 001_image.png is 8x4"):
        catalog._cwfid(tmp_path, "train", None)[0]
    for text, message in [("train: !!python/object:os.system [1]\ntest: [2]\n", "list of image numbers"),
                          ("train: [1, 'x']\ntest: [2]\n", "list of image numbers"),
                          ("train: [1]\n", "a train and a test list")]:
        _cwfid_tree(tmp_path, ok, split=text)
        with pytest.raises(ValueError, match=message):
            catalog._cwfid(tmp_path, "train", None)


def test_segmentation_dataset_refuses_mismatched_lists_and_index_masks_out_of_range(tmp_path):
    # attacks: more images than masks; a class-index mask holding a value past the class list
    Image.new("RGB", (3, 2)).save(tmp_path / "a.png")
    Image.fromarray(np.array([[0, 1, 5], [0, 0, 0]], np.uint8)).save(tmp_path / "a_mask.png")
    with pytest.raises(ValueError, match="2 images but 1 masks"):
        data.SegmentationDataset([tmp_path / "a.png"] * 2, [tmp_path / "a_mask.png"], ["bg", "fg"])
    ds = data.SegmentationDataset([tmp_path / "a.png"], [tmp_path / "a_mask.png"], ["bg", "fg"])
    with pytest.raises(ValueError, match=r"values 0..1 \(\['bg', 'fg'\]\)"):
        ds[0]


def test_box_tables_refuse_boxes_outside_the_image_unknown_classes_and_bad_numbers(tmp_path):
    # attacks: a box reaching past the image, an empty box, a class not in the list, a corner that is
    # not a number, a missing column, one file with two sizes, an image whose size is not the annotated one
    head = "filename,width,height,class,xmin,ymin,xmax,ymax\n"
    cases = [("a.jpg,10,8,raccoon,1,2,11,6\n", r"row 2 \(a.jpg\): box \(1.0, 2.0, 11.0, 6.0\) reaches outside the 10x8"),
             ("a.jpg,10,8,raccoon,5,2,5,6\n", "is empty"),
             ("a.jpg,10,8,dog,1,2,5,6\n", "class 'dog' is not one of \\['raccoon'\\]"),
             ("a.jpg,10,8,raccoon,1,2,five,6\n", "must be numbers"),
             ("a.jpg,10,8,raccoon,1,2,5,6\na.jpg,12,8,raccoon,1,2,5,6\n", r"row 3 \(a.jpg\): size \(12, 8\) differs")]
    for rows, message in cases:
        (tmp_path / "t.csv").write_text(head + rows)
        with pytest.raises(ValueError, match=message):
            data.boxes_from_csv(tmp_path / "t.csv", ["raccoon"])
    (tmp_path / "t.csv").write_text("filename,class,xmin\na.jpg,raccoon,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        data.boxes_from_csv(tmp_path / "t.csv", ["raccoon"])
    Image.new("RGB", (12, 8)).save(tmp_path / "a.jpg")
    ds = data.DetectionDataset(tmp_path, {"a.jpg": {"size": (10, 8), "boxes": [(1, 2, 5, 6)], "labels": [1]}},
                               ["raccoon"])
    with pytest.raises(ValueError, match="is 12x8 pixels but its boxes were drawn on a 10x8 image"):
        ds[0]
    with pytest.raises(ValueError, match="label 2 is not a class"):
        data.DetectionDataset(tmp_path, {"a.jpg": {"size": (12, 8), "boxes": [(1, 2, 5, 6)], "labels": [2]}},
                              ["raccoon"])


def test_tile_masks_refuse_a_missing_mask_a_bad_file_name_and_a_threshold_for_many_classes(tmp_path):
    # attacks: an image without its mask, a file name without the exposure, threshold= on three classes
    from tlhelpers.data import catalog
    folder = tmp_path / "MT_Crack" / "Imgs"
    folder.mkdir(parents=True)
    Image.new("RGB", (4, 3)).save(folder / "exp2_num_1.jpg")
    Image.fromarray(np.array([[0, 200, 90, 130]] * 3, np.uint8)).save(folder / "exp2_num_1.png")
    ds = catalog._magnetic_tiles(tmp_path, "all", None, masks=True)
    assert ds.exposures == [2] and ds.defect_classes == ["Crack"]
    assert ds[0][1][0].tolist() == [0, 1, 0, 1]   # greys cut at 128
    Image.new("RGB", (4, 3)).save(folder / "exp3_num_2.jpg")
    with pytest.raises(ValueError, match="1 tile images have no mask beside them"):
        catalog._magnetic_tiles(tmp_path, "all", None, masks=True)
    with pytest.raises(ValueError, match="does not start with an exposure"):
        catalog.tile_exposure("num_2.jpg")
    with pytest.raises(ValueError, match="two classes"):
        data.SegmentationDataset([], [], ["a", "b", "c"], threshold=128)

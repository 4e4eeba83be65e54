"""Reading users' photographs: every format, bit depth and channel layout, and every bad input."""

import os
import warnings

import cv2
import numpy as np
import pytest

from bowlrp.datasets import (
    IMAGE_EXTENSIONS,
    SkippedFilesWarning,
    find_images,
    list_image_folder,
    load_image_folder,
    read_image,
)
from photo_fixtures import jpeg_with_orientation, synthetic_folder, write

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (30, 40), dtype=np.uint8)


@pytest.mark.parametrize("ext", ["png", "tif", "bmp", "webp"])
def test_lossless_formats_round_trip_rgb_and_gray(tmp_path, ext):
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == "webp" else []
    np.testing.assert_array_equal(read_image(write(str(tmp_path / f"c.{ext}"), RGB, params)), RGB)
    g = read_image(write(str(tmp_path / f"g.{ext}"), GRAY, params))
    if ext in ("bmp", "webp") and g.ndim == 3:  # these codecs may store gray as three equal channels
        assert (g == g[..., :1]).all()
        g = g[..., 0]
    np.testing.assert_array_equal(g, GRAY)


def test_jpeg_reads_close_to_the_original(tmp_path):
    yy, xx = np.mgrid[:30, :40]
    smooth = np.stack([xx * 6, yy * 8, 255 - xx * 6], axis=2).astype(np.uint8)  # a photograph-like gradient
    img = read_image(write(str(tmp_path / "c.jpg"), smooth, [cv2.IMWRITE_JPEG_QUALITY, 95]))
    assert img.shape == smooth.shape and img.dtype == np.uint8
    assert np.abs(img.astype(int) - smooth).mean() < 3  # lossy, but the same picture


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_sixteen_bit_maps_the_full_range_onto_eight_bits(tmp_path, ext):
    v = (np.arange(30 * 40).reshape(30, 40) % 256).astype(np.uint16) * 257  # 257 k -> k exactly
    v[0, 0] = 65535
    img = read_image(write(str(tmp_path / f"d.{ext}"), v))
    assert img.dtype == np.uint8 and img.shape == (30, 40)
    expected = (v // 257).astype(np.uint8)
    np.testing.assert_array_equal(img, expected)
    rgb16 = np.stack([v, v // 2, v // 4], axis=2).astype(np.uint16)
    img = read_image(write(str(tmp_path / f"c.{ext}"), rgb16))
    np.testing.assert_array_equal(img[..., 0], expected)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0] = 200  # red
    rgba[:, :4, 3] = 255  # left half opaque, right half transparent
    img = read_image(write(str(tmp_path / "a.png"), rgba))
    assert img.shape == (6, 8, 3)
    np.testing.assert_array_equal(img[:, :4], np.broadcast_to([200, 0, 0], (6, 4, 3)))
    np.testing.assert_array_equal(img[:, 4:], 255)
    half = rgba.copy()
    half[..., 3] = 128
    img = read_image(write(str(tmp_path / "h.png"), half))
    np.testing.assert_allclose(img[0, 0], [200 * 128 / 255 + 255 * 127 / 255, 255 * 127 / 255, 255 * 127 / 255],
                               atol=1)


@pytest.mark.parametrize("orientation,expected", [
    (1, lambda a: a), (3, lambda a: a[::-1, ::-1]), (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1)),
])
def test_exif_orientation_is_applied(tmp_path, orientation, expected):
    img = np.zeros((32, 48, 3), np.uint8)
    img[:16, :16] = (255, 0, 0)  # a red block in the top-left corner
    got = read_image(jpeg_with_orientation(str(tmp_path / f"o{orientation}.jpg"), img, orientation))
    want = expected(img)
    assert got.shape == want.shape
    red = (got[..., 0] > 128) & (got[..., 1] < 128)
    assert np.mean(red == ((want[..., 0] > 128) & (want[..., 1] < 128))) > 0.97


def test_max_side_and_gray(tmp_path):
    path = write(str(tmp_path / "wide.png"), np.tile(RGB, (4, 10, 1)))  # 120 x 400
    assert read_image(path).shape == (120, 400, 3)
    assert read_image(path, max_side=100).shape == (30, 100, 3)
    assert read_image(path, max_side=1000).shape == (120, 400, 3)  # never enlarged
    g = read_image(path, max_side=100, gray=True)
    assert g.shape == (30, 100) and g.dtype == np.uint8
    np.testing.assert_array_equal(read_image(path, gray=True), cv2.cvtColor(np.tile(RGB, (4, 10, 1)),
                                                                            cv2.COLOR_RGB2GRAY))
    for bad in (0, -3, 2.5, True, "100"):
        with pytest.raises(ValueError, match="max_side"):
            read_image(path, max_side=bad)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png.*empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(ValueError, match="broken.jpg.*could not decode"):
        read_image(tmp_path / "broken.jpg")
    with pytest.raises(IsADirectoryError, match="folder"):
        read_image(tmp_path)


def test_load_image_folder_every_format_and_a_broken_file(tmp_path):
    paths, bad = synthetic_folder(str(tmp_path), n_per_class=6)
    (tmp_path / "spots" / "notes.txt").write_text("not an image")
    (tmp_path / "loose.png").write_bytes(b"")
    (tmp_path / "stripes" / ".hidden.png").write_bytes(b"")  # hidden files are ignored
    write(str(tmp_path / "stripes" / "nested" / "deep.png"), GRAY)  # nested folders belong to the class
    with pytest.warns(SkippedFilesWarning, match="broken.png") as rec:
        data = load_image_folder(tmp_path)
    assert "notes.txt" in str(rec[0].message)
    assert data.target_names == ["spots", "stripes"]
    assert len(data.images) == len(data.paths) == len(data.target) == 13
    assert {os.path.splitext(p)[1] for p in data.paths} == {".png", ".jpg", ".tif", ".bmp", ".webp"}
    for img, path in zip(data.images, data.paths):  # WebP has no gray mode: three equal channels
        assert img.dtype == np.uint8 and img.shape[:2] in ((48, 48), (30, 40))
        assert img.ndim == 2 or (path.endswith(".webp") and (img == img[..., :1]).all())
    with pytest.warns(SkippedFilesWarning):
        assert all(img.ndim == 2 for img in load_image_folder(tmp_path, gray=True).images)
    for img, path, k in zip(data.images, data.paths, data.target):
        assert os.path.basename(os.path.dirname(path)) in (data.target_names[k], "nested")
    skipped = dict(data.skipped)
    assert set(skipped) == {bad, str(tmp_path / "spots" / "notes.txt"), str(tmp_path / "loose.png")}
    assert "could not decode" in skipped[bad] and "not an image file" in skipped[str(tmp_path / "spots" / "notes.txt")]
    assert "class sub-folder" in skipped[str(tmp_path / "loose.png")]


def test_load_image_folder_options(tmp_path):
    write(str(tmp_path / "a" / "big.png"), np.tile(RGB, (10, 10, 1)))  # 300 x 400
    write(str(tmp_path / "b" / "small.png"), GRAY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped: no warning
        data = load_image_folder(tmp_path, max_side=100, n_jobs=2)
    assert data.images[0].shape == (75, 100, 3) and data.images[1].shape == (30, 40)
    assert load_image_folder(tmp_path, gray=True).images[0].shape == (300, 400)


def test_folder_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is a file"):
        load_image_folder(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_image_folder(empty)
    write(str(tmp_path / "root" / "cats" / "a.png"), GRAY)
    (tmp_path / "root" / "dogs").mkdir()
    with pytest.raises(ValueError, match=r"dogs.*hold no image files"):
        load_image_folder(tmp_path / "root")
    (tmp_path / "root" / "dogs" / "broken.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"\['dogs'\].*no readable image.*broken.png"):
        load_image_folder(tmp_path / "root")


def test_list_and_find(tmp_path):
    paths, bad = synthetic_folder(str(tmp_path / "set"), n_per_class=3)
    listing = list_image_folder(tmp_path / "set")
    assert len(listing.paths) == 7 and bad in listing.paths  # listing does not read the files
    single = write(str(tmp_path / "one.jpg"), RGB)
    (tmp_path / "set" / "readme.md").write_text("x")
    found, skipped = find_images([single, str(tmp_path / "set"), single])
    assert found[0] == single and len(found) == 8  # duplicates dropped, broken file still listed
    assert [p for p, _ in skipped] == [str(tmp_path / "set" / "readme.md")]
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        find_images([str(tmp_path / "nothing.png")])
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="no image files"):
        find_images(str(tmp_path / "txt"))
    assert set(IMAGE_EXTENSIONS) >= {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def test_texture_photographs_as_a_folder(tmp_path):
    pytest.importorskip("skimage")
    from bowlrp.datasets import load_textures, write_texture_folder

    data = load_textures(tile_size=128)
    assert data.images.shape == (48, 128, 128) and data.target_names == ["brick", "grass", "gravel"]
    np.testing.assert_array_equal(np.bincount(data.target), [16, 16, 16])
    paths = write_texture_folder(tmp_path, tile_size=128, formats=("png", "webp", "jpg"))
    back = load_image_folder(tmp_path)
    assert back.paths == sorted(paths, key=lambda p: (p.split(os.sep)[-2], p))
    for img, path in zip(back.images, back.paths):
        i = paths.index(path)
        img = img[..., 0] if img.ndim == 3 else img  # WebP stores gray as three equal channels
        if path.endswith(".jpg"):
            assert np.abs(img.astype(int) - data.images[i]).mean() < 4
        else:
            np.testing.assert_array_equal(img, data.images[i])
    with pytest.raises(ValueError, match="unknown texture"):
        load_textures(names=("brick", "wood"))
    with pytest.raises(ValueError, match="formats"):
        write_texture_folder(tmp_path, formats=("gif",))


def test_threaded_reads_restore_opencv_log_level(tmp_path):
    from bowlrp.datasets import read_images

    paths = []
    for i in range(24):
        p = tmp_path / f"{i}.png"
        if i % 3:
            write(str(p), GRAY)
        else:
            p.write_bytes(b"garbage")
        paths.append(str(p))
    before = cv2.utils.logging.getLogLevel()
    images, kept, failed = read_images(paths, n_jobs=4)
    assert len(images) == 16 and [p for p, _ in failed] == paths[::3]
    np.testing.assert_array_equal(kept, [i for i in range(24) if i % 3])
    assert cv2.utils.logging.getLogLevel() == before

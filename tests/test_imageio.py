"""Tests for sclle.imageio: reading, writing and converting images without losing their layout."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from sclle import imageio as sio
from sclle.errors import ImageReadError, ImageWriteError, SclleError
from sclle.imageio.formats import EXT_TO_FORMAT

from conftest import png_declaring

RNG = np.random.default_rng(1234)


def rand_u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def rand_u16(*shape: int) -> np.ndarray:
    return RNG.integers(0, 65536, shape, dtype=np.uint16)


def smooth_u8(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth RGB image (lossy codecs keep it close, unlike noise)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w, y / h, 0.5 + 0.4 * np.sin(x / 7.0) * np.cos(y / 5.0)], axis=2)
    return np.rint(img * 255).astype(np.uint8)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_bytes(orientation: int = 1, make: str = "SclleCam") -> bytes:
    ex = PILImage.Exif()
    ex[0x010F] = make
    ex[0x0112] = orientation
    return ex.tobytes()


def check_error(exc: pytest.ExceptionInfo, name: str) -> None:
    """User-facing errors: SclleError, one line, naming the file."""
    assert isinstance(exc.value, SclleError)
    msg = str(exc.value)
    assert "\n" not in msg
    assert name in msg


def read_raw(path: Path) -> np.ndarray:
    """Reference decode with OpenCV (16-bit aware), RGB(A) order."""
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGRA2RGBA if a.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return a


# ------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff", ".PNG"])
def test_lossless_8bit_rgb_round_trip_is_exact(tmp_path: Path, ext: str) -> None:
    src = rand_u8(20, 30, 3)
    path = tmp_path / f"in{ext}"
    PILImage.fromarray(src).save(path)
    img = sio.read_image(path)
    assert img.rgb.dtype == np.float32 and img.rgb.shape == (20, 30, 3)
    assert (img.mode, img.bit_depth, img.alpha) == ("rgb", 8, None)
    assert img.format == EXT_TO_FORMAT[ext.lower()]
    out = sio.write_image(tmp_path / "out" / f"o{ext}", img, img.rgb)
    assert out.suffix == ext
    back = np.asarray(PILImage.open(out))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, src)


@pytest.mark.parametrize(("ext", "tol"), [(".jpg", 4.0), (".jpeg", 4.0), (".webp", 5.0)])
def test_lossy_8bit_rgb_round_trip_is_close(tmp_path: Path, ext: str, tol: float) -> None:
    src = smooth_u8()
    path = tmp_path / f"in{ext}"
    PILImage.fromarray(src).save(path, quality=98)
    img = sio.read_image(path)
    assert img.format == {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}[ext]
    out = sio.write_image(tmp_path / f"o{ext}", img, img.rgb, quality=98)
    back = np.asarray(PILImage.open(out)).astype(np.float32)
    assert back.shape == src.shape
    assert np.abs(back - src).mean() < tol


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgb_is_preserved_exactly(tmp_path: Path, ext: str) -> None:
    src = rand_u16(12, 17, 3)
    path = tmp_path / f"in{ext}"
    assert cv2.imwrite(str(path), src[..., ::-1])
    img = sio.read_image(path)
    assert (img.mode, img.bit_depth) == ("rgb", 16)
    np.testing.assert_array_equal(sio.to_array(img, img.rgb), src)
    out = sio.write_image(tmp_path / f"out{ext}", img, img.rgb)
    back = read_raw(out)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, src)


def test_16bit_gray_png_stays_16bit_gray(tmp_path: Path) -> None:
    src = rand_u16(9, 14)
    path = tmp_path / "g16.png"
    PILImage.fromarray(src).save(path)
    img = sio.read_image(path)
    assert (img.mode, img.bit_depth) == ("gray", 16)
    assert np.array_equal(img.rgb[..., 0], img.rgb[..., 2])
    out = sio.write_image(tmp_path / "o.png", img, img.rgb)
    assert PILImage.open(out).mode.startswith("I")
    back = read_raw(out)
    assert back.dtype == np.uint16 and back.ndim == 2
    np.testing.assert_array_equal(back, src)


def test_16bit_rgba_png_keeps_alpha_and_depth(tmp_path: Path) -> None:
    src = rand_u16(10, 11, 4)
    path = tmp_path / "a16.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(src, cv2.COLOR_RGBA2BGRA))
    img = sio.read_image(path)
    assert (img.mode, img.bit_depth) == ("rgb", 16)
    assert img.alpha is not None and img.alpha.dtype == np.uint16
    np.testing.assert_array_equal(img.alpha, src[..., 3])
    out = sio.write_image(tmp_path / "o.png", img, img.rgb * 0.5)
    back = read_raw(out)
    np.testing.assert_array_equal(back[..., 3], src[..., 3])
    np.testing.assert_array_equal(
        back[..., :3], np.rint(src[..., :3] / 65535 * 0.5 * 65535).astype(np.uint16)
    )


def test_16bit_gray_alpha_png(tmp_path: Path) -> None:
    """Hand-made PNG (colour type 4, 16 bits): neither Pillow nor OpenCV writes one."""
    src = rand_u16(5, 6, 2)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + src[y].astype(">u2").tobytes() for y in range(src.shape[0]))
    ihdr = struct.pack(">IIBBBBB", 6, 5, 16, 4, 0, 0, 0)
    path = tmp_path / "ga16.png"
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    img = sio.read_image(path)
    assert (img.mode, img.bit_depth) == ("gray", 16)
    np.testing.assert_array_equal(sio.to_array(img, img.rgb), src)
    with pytest.warns(sio.ConversionWarning, match="RGBA"):
        out = sio.write_image(tmp_path / "o.png", img, img.rgb)
    back = read_raw(out)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[..., 3], src[..., 1])
    np.testing.assert_array_equal(back[..., 0], src[..., 0])


def test_grayscale_stays_grayscale(tmp_path: Path) -> None:
    src = rand_u8(16, 16)
    path = tmp_path / "g.png"
    PILImage.fromarray(src).save(path)
    img = sio.read_image(path)
    assert img.mode == "gray" and img.rgb.shape == (16, 16, 3)
    np.testing.assert_array_equal(img.rgb[..., 0], img.rgb[..., 1])
    for ext in (".png", ".jpg", ".tif", ".bmp"):
        out = sio.write_image(tmp_path / f"o{ext}", img, img.rgb)
        assert PILImage.open(out).mode == "L", ext
    np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / "o.png")), src)


def test_gray_output_is_mean_of_channels() -> None:
    img = sio.from_array(np.zeros((2, 3), np.uint8))
    rgb = np.zeros((2, 3, 3), np.float32)
    rgb[..., 0] = 0.3
    rgb[..., 1] = 0.6
    rgb[..., 2] = 0.9
    out = sio.to_array(img, rgb)
    assert out.shape == (2, 3)
    assert np.all(out == round(0.6 * 255))


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_rgba_alpha_is_bit_exact(tmp_path: Path, ext: str) -> None:
    src = rand_u8(20, 24, 4)
    path = tmp_path / f"in{ext}"
    PILImage.fromarray(src, "RGBA").save(path, lossless=True) if ext == ".webp" else PILImage.fromarray(
        src
    ).save(path)
    img = sio.read_image(path)
    assert img.alpha is not None and img.alpha.dtype == np.uint8
    np.testing.assert_array_equal(img.alpha, src[..., 3])
    brighter = np.sqrt(img.rgb)  # any enhancement
    out = sio.write_image(tmp_path / f"o{ext}", img, brighter)
    back = np.asarray(PILImage.open(out))
    assert back.shape == (20, 24, 4)
    if ext != ".webp":  # lossy WebP may still store alpha losslessly, but only PNG/TIFF are guaranteed
        np.testing.assert_array_equal(back[..., 3], src[..., 3])


def test_gray_alpha_keeps_alpha(tmp_path: Path) -> None:
    src = rand_u8(8, 9, 2)
    path = tmp_path / "la.png"
    PILImage.fromarray(src, "LA").save(path)
    img = sio.read_image(path)
    assert img.mode == "gray"
    np.testing.assert_array_equal(img.alpha, src[..., 1])
    out = sio.write_image(tmp_path / "o.png", img, img.rgb)
    back = PILImage.open(out)
    assert back.mode == "LA"
    np.testing.assert_array_equal(np.asarray(back), src)


def test_alpha_dropped_for_jpeg_with_warning(tmp_path: Path) -> None:
    img = sio.from_array(rand_u8(6, 7, 4))
    with pytest.warns(sio.ConversionWarning, match="alpha"):
        out = sio.write_image(tmp_path / "o.jpg", img, img.rgb)
    assert PILImage.open(out).mode == "RGB"


def test_16bit_to_jpeg_becomes_8bit_with_note(tmp_path: Path) -> None:
    src = rand_u16(6, 8, 3)
    img = sio.from_array(src)
    assert any("8-bit" in n for n in sio.conversion_notes(img, "jpeg"))
    assert sio.conversion_notes(img, "png") == []
    with pytest.warns(sio.ConversionWarning, match="16-bit"):
        out = sio.write_image(tmp_path / "o.png", img, img.rgb, format="JPEG")
    assert out == tmp_path / "o.jpg"
    back = PILImage.open(out)
    assert back.format == "JPEG" and back.mode == "RGB"


def test_palette_images_are_read_as_rgb(tmp_path: Path) -> None:
    src = rand_u8(10, 10, 3)
    p = PILImage.fromarray(src).convert("P")
    p.save(tmp_path / "p.png")
    img = sio.read_image(tmp_path / "p.png")
    assert img.mode == "rgb" and img.alpha is None
    np.testing.assert_array_equal(sio.to_array(img, img.rgb), np.asarray(p.convert("RGB")))
    p.info["transparency"] = 0
    p.save(tmp_path / "pt.png", transparency=0)
    assert sio.read_image(tmp_path / "pt.png").alpha is not None


# ------------------------------------------------------------------------------------------- orientation


def test_exif_orientation_6_jpeg_is_rotated(tmp_path: Path) -> None:
    src = np.zeros((20, 40, 3), np.uint8)
    src[:, :20] = (255, 0, 0)  # left half red, right half blue; stored landscape
    src[:, 20:] = (0, 0, 255)
    path = tmp_path / "rot.jpg"
    PILImage.fromarray(src).save(path, exif=exif_bytes(6), quality=100)
    img = sio.read_image(path)
    assert img.rgb.shape == (40, 20, 3)  # displayed portrait
    # orientation 6 = rotate 90 degrees clockwise for display: the stored left edge ends up on top
    assert img.rgb[2, 10, 0] > 0.9 and img.rgb[2, 10, 2] < 0.1
    assert img.rgb[-3, 10, 2] > 0.9 and img.rgb[-3, 10, 0] < 0.1
    exif = PILImage.Exif()
    exif.load(img.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "SclleCam"
    out = sio.write_image(tmp_path / "o.jpg", img, img.rgb)
    again = PILImage.open(out)
    assert again.size == (20, 40) and again.getexif()[0x0112] == 1
    assert np.asarray(ImageOps.exif_transpose(again)).shape == (40, 20, 3)  # viewers do not re-rotate


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_match_pillow(tmp_path: Path, orientation: int) -> None:
    src = rand_u8(5, 8, 3)
    path = tmp_path / "o.png"
    PILImage.fromarray(src).save(path, exif=exif_bytes(orientation))
    img = sio.read_image(path)
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    np.testing.assert_array_equal(sio.to_array(img, img.rgb), expected)


def test_orientation_reset_patches_only_the_tag(tmp_path: Path) -> None:
    path = tmp_path / "r.jpg"
    raw = exif_bytes(8, make="X" * 40)
    PILImage.fromarray(rand_u8(4, 6, 3)).save(path, exif=raw)
    kept = sio.read_image(path).exif
    original = PILImage.open(path).info["exif"]
    assert kept is not None and len(kept) == len(original)
    diff = [i for i, (a, b) in enumerate(zip(kept, original, strict=True)) if a != b]
    assert 1 <= len(diff) <= 2  # only the 2-byte orientation value changed


# ------------------------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("out_ext", [".jpg", ".png", ".webp", ".tif"])
def test_exif_and_icc_are_kept(tmp_path: Path, out_ext: str) -> None:
    icc = srgb_icc()
    path = tmp_path / "meta.jpg"
    PILImage.fromarray(smooth_u8()).save(path, exif=exif_bytes(1), icc_profile=icc)
    img = sio.read_image(path)
    assert img.icc_profile == icc
    out = sio.write_image(tmp_path / f"o{out_ext}", img, img.rgb)
    back = PILImage.open(out)
    assert back.info.get("icc_profile") == icc
    assert back.getexif().get(0x010F) == "SclleCam"


def test_16bit_png_keeps_exif_and_icc(tmp_path: Path) -> None:
    img = sio.from_array(rand_u16(6, 6, 3))
    img.icc_profile = srgb_icc()
    img.exif = exif_bytes(1)
    out = sio.write_image(tmp_path / "o.png", img, img.rgb)
    again = sio.read_image(out)
    assert again.bit_depth == 16 and again.icc_profile == img.icc_profile
    assert PILImage.open(out).getexif().get(0x010F) == "SclleCam"


# ------------------------------------------------------------------------------------------- read errors


def test_corrupt_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "noise.jpg"
    path.write_bytes(RNG.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError) as exc:
        sio.read_image(path)
    check_error(exc, "noise.jpg")


def test_truncated_jpeg_raises(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    PILImage.fromarray(rand_u8(64, 64, 3)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as exc:
        sio.read_image(path)
    check_error(exc, "cut.jpg")
    assert "truncated" in str(exc.value)


def test_truncated_16bit_png_raises(tmp_path: Path) -> None:
    path = tmp_path / "cut16.png"
    cv2.imwrite(str(path), rand_u16(64, 64, 3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as exc:
        sio.read_image(path)
    check_error(exc, "cut16.png")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.png", None, "no such file"),
        ("empty.png", b"", "empty"),
        ("anim.gif", "gif", "unsupported file type"),
        ("notes.txt", b"hello", "unsupported file type"),
        ("gif_named.png", "gif", "unsupported image format"),
    ],
)
def test_read_errors_are_one_line(
    tmp_path: Path, name: str, content: bytes | str | None, reason: str
) -> None:
    path = tmp_path / name
    if content == "gif":
        PILImage.fromarray(rand_u8(4, 4, 3)).save(path, format="GIF")
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError) as exc:
        sio.read_image(path)
    check_error(exc, name)
    assert reason in str(exc.value)


def test_reading_a_folder_raises(tmp_path: Path) -> None:
    folder = tmp_path / "pics.png"
    folder.mkdir()
    with pytest.raises(ImageReadError) as exc:
        sio.read_image(folder)
    check_error(exc, "pics.png")


# ------------------------------------------------------------------------------------------- write errors


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    img = sio.from_array(rand_u8(5, 5, 3))
    target = tmp_path / "o.png"
    sio.write_image(target, img, img.rgb)
    before = target.read_bytes()
    with pytest.raises(ImageWriteError) as exc:
        sio.write_image(target, img, np.zeros_like(img.rgb))
    check_error(exc, "o.png")
    assert "--overwrite" in str(exc.value)
    assert target.read_bytes() == before
    sio.write_image(target, img, np.zeros_like(img.rgb), overwrite=True)
    assert np.asarray(PILImage.open(target)).max() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]  # no temporary files left


def test_writing_onto_the_input_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    PILImage.fromarray(rand_u8(5, 5, 3)).save(path)
    before = path.read_bytes()
    img = sio.read_image(path)
    for target in (path, tmp_path / "sub" / ".." / "in.png"):
        with pytest.raises(ImageWriteError) as exc:
            sio.write_image(target, img, img.rgb, overwrite=True)
        check_error(exc, "in.png")
    assert path.read_bytes() == before


def test_folder_under_a_file_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "plainfile"
    blocker.write_text("x")
    img = sio.from_array(rand_u8(5, 5, 3))
    with pytest.raises(ImageWriteError) as exc:
        sio.write_image(blocker / "sub" / "o.png", img, img.rgb)
    check_error(exc, "o.png")


def test_unwritable_folder_fails(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running with privileges that ignore folder permissions (root)")
        img = sio.from_array(rand_u8(5, 5, 3))
        with pytest.raises(ImageWriteError) as exc:
            sio.write_image(folder / "o.png", img, img.rgb)
        check_error(exc, "o.png")
    finally:
        folder.chmod(0o700)


def test_unknown_output_format_or_extension(tmp_path: Path) -> None:
    img = sio.from_array(rand_u8(5, 5, 3))
    with pytest.raises(ImageWriteError) as exc:
        sio.write_image(tmp_path / "o.png", img, img.rgb, format="gif")
    check_error(exc, "o.png")
    with pytest.raises(ImageWriteError) as exc:
        sio.write_image(tmp_path / "o.gif", img, img.rgb)
    check_error(exc, "o.gif")


def test_output_format_follows_input_when_no_extension(tmp_path: Path) -> None:
    path = tmp_path / "in.tif"
    PILImage.fromarray(rand_u8(5, 5, 3)).save(path)
    img = sio.read_image(path)
    assert sio.write_image(tmp_path / "result", img, img.rgb) == tmp_path / "result.tif"
    assert sio.write_image(tmp_path / "x.tif", img, img.rgb, format="webp") == tmp_path / "x.webp"
    assert PILImage.open(tmp_path / "x.webp").format == "WEBP"


# ------------------------------------------------------------------------------- arrays, PIL, tensors


@pytest.mark.parametrize(
    "arr",
    [
        rand_u8(6, 7),
        rand_u8(6, 7, 1),
        rand_u8(6, 7, 2),
        rand_u8(6, 7, 3),
        rand_u8(6, 7, 4),
        rand_u16(6, 7),
        rand_u16(6, 7, 3),
        rand_u16(6, 7, 4),
        RNG.random((6, 7, 3)).astype(np.float32),
        RNG.random((6, 7)),
    ],
    ids=lambda a: f"{a.dtype}-{'x'.join(map(str, a.shape))}",
)
def test_array_round_trip_keeps_layout(arr: np.ndarray) -> None:
    img = sio.from_array(arr)
    assert img.rgb.shape == (6, 7, 3) and img.rgb.dtype == np.float32
    assert img.rgb.min() >= 0.0 and img.rgb.max() <= 1.0
    back = sio.to_array(img, img.rgb)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    if arr.dtype.kind == "f":
        np.testing.assert_allclose(back, arr, atol=1e-6)
    else:
        np.testing.assert_array_equal(back, arr)


def test_from_array_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sio.from_array(np.full((4, 4, 3), 1.5, np.float32))
    ok = sio.from_array(np.full((2, 2, 3), 1.0 + 1e-7, np.float32))  # rounding overshoot is tolerated
    assert ok.rgb.max() == 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sio.from_array(np.full((4, 4), -0.01))
    with pytest.raises(ValueError, match="dtype"):
        sio.from_array(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError, match="channels"):
        sio.from_array(np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        sio.from_array(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        sio.from_array(np.full((2, 2, 3), np.nan, np.float32))


def test_to_array_clips_and_checks_shape() -> None:
    img = sio.from_array(rand_u8(4, 5, 4))
    out = sio.to_array(img, np.full((4, 5, 3), 1.7, np.float32))
    assert np.all(out[..., :3] == 255)
    np.testing.assert_array_equal(out[..., 3], img.alpha)
    with pytest.raises(ValueError):
        sio.to_array(img, np.zeros((5, 4, 3), np.float32))
    wide = sio.to_array(img, img.rgb, dtype=np.uint16)
    assert wide.dtype == np.uint16
    np.testing.assert_array_equal(wide[..., 3], img.alpha.astype(np.uint16) * 257)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
def test_pil_round_trip(mode: str) -> None:
    shape = {"L": (6, 5), "LA": (6, 5, 2), "RGB": (6, 5, 3), "RGBA": (6, 5, 4), "I;16": (6, 5)}[mode]
    arr = rand_u16(*shape) if mode == "I;16" else rand_u8(*shape)
    pil = PILImage.fromarray(arr)
    assert pil.mode == mode
    img = sio.from_pil(pil)
    assert img.bit_depth == (16 if mode == "I;16" else 8)
    back = sio.to_pil(img, img.rgb)
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), arr)


def test_pil_palette_comes_back_rgb() -> None:
    pil = PILImage.fromarray(rand_u8(6, 5, 3)).convert("P")
    img = sio.from_pil(pil)
    back = sio.to_pil(img, img.rgb)
    assert back.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(back), np.asarray(pil.convert("RGB")))


def test_tensor_helpers() -> None:
    rgb = RNG.random((5, 7, 3)).astype(np.float32)
    t = sio.to_tensor(rgb)
    assert t.shape == (1, 3, 5, 7) and t.dtype == torch.float32
    assert float(t[0, 1, 2, 3]) == pytest.approx(float(rgb[2, 3, 1]))
    np.testing.assert_array_equal(sio.from_tensor(t), rgb)
    np.testing.assert_array_equal(sio.from_tensor(t[0].double()), rgb)
    with pytest.raises(ValueError):
        sio.from_tensor(torch.zeros(2, 3, 4, 4))


# ------------------------------------------------------------------------------------------- paths


def test_output_path() -> None:
    src = Path("/data/in/sub/a/photo.JPG")
    assert sio.output_path(src, "/out") == Path("/out/photo.JPG")
    assert sio.output_path(src, "/out", relative_to="/data/in") == Path("/out/sub/a/photo.JPG")
    assert sio.output_path(src, "/out", format="png", suffix="_enh") == Path("/out/photo_enh.png")
    assert sio.output_path(src, "/out", format="jpeg") == Path("/out/photo.JPG")  # extension already JPEG
    assert sio.output_path(src, None, suffix="_x") == Path("/data/in/sub/a/photo_x.JPG")


def test_find_images(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    for rel in ("b.png", "a.JPG", "sub/c.tif", "sub/deep/d.webp", ".hidden.png"):
        PILImage.fromarray(rand_u8(4, 4, 3)).save(tmp_path / rel, format="PNG")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "empty").mkdir()

    flat, errors = sio.find_images([tmp_path])
    assert errors == []
    assert [p.name for p, _ in flat] == ["a.JPG", "b.png"]
    assert all(base == tmp_path for _, base in flat)

    deep, _ = sio.find_images([tmp_path, tmp_path / "b.png"], recursive=True)  # duplicate removed
    assert [p.relative_to(tmp_path).as_posix() for p, _ in deep] == [
        "a.JPG",
        "b.png",
        "sub/c.tif",
        "sub/deep/d.webp",
    ]

    pattern = str(tmp_path / "**" / "*.webp")
    found, errors = sio.find_images([pattern])
    assert errors == [] and [p.name for p, _ in found] == ["d.webp"]
    assert sio.output_path(found[0][0], "/o", relative_to=found[0][1]) == Path("/o/sub/deep/d.webp")

    _, errors = sio.find_images(
        [tmp_path / "nope.png", tmp_path / "empty", str(tmp_path / "*.bmp"), tmp_path / "readme.txt"]
    )
    assert len(errors) == 4
    assert all("\n" not in e for e in errors)
    assert "nope.png" in errors[0] and "no such" in errors[0]
    assert "empty" in errors[1] and "no images found" in errors[1]
    assert "*.bmp" in errors[2]
    assert "readme.txt" in errors[3] and "unsupported" in errors[3]


# ------------------------------------------------------------------------------------------- compare, sample


def test_side_by_side() -> None:
    before = np.zeros((60, 80, 3), np.float32)
    after = np.full((60, 80, 3), 0.5, np.float32)
    out = sio.side_by_side(before, after)
    assert out.dtype == np.float32 and out.shape[0] == 60 and out.shape[1] > 160
    assert out[-1, 0].max() == 0.0 and out[-1, -1].min() == pytest.approx(0.5)  # halves in order
    assert out[:15, :40].max() > 0.9  # label text drawn on the dark half
    plain = sio.side_by_side(before, after, labels=None)
    assert plain[:15, :40].max() == 0.0
    resized = sio.side_by_side(np.zeros((30, 40, 3)), after)
    assert resized.shape == out.shape


def test_bundled_sample_is_a_dark_photo() -> None:
    path = Path(sio.__file__).parents[1] / "assets" / "sample_dark.jpg"
    assert path.stat().st_size < 300_000
    img = sio.read_image(path)
    assert img.rgb.shape == (512, 512, 3) and img.mode == "rgb"
    assert img.rgb.mean() < 0.25


def test_no_warning_for_plain_round_trip(tmp_path: Path) -> None:
    img = sio.from_array(rand_u8(4, 4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sio.write_image(tmp_path / "o.png", img, img.rgb)


# ------------------------------------------------------------------------------------------- hardening (issue 14)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_declared_size_above_the_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(12000, 10000))  # 120 Mpx declared, 100-odd bytes on disk
    with pytest.raises(ImageReadError) as exc:
        sio.read_image(path)
    check_error(exc, "bomb.png")
    msg = str(exc.value)
    # refused for its size, not as a truncated file: the pixels were never decoded
    assert "12000x10000" in msg and "120.0 megapixels" in msg and "--max-pixels" in msg
    assert "truncated" not in msg
    with pytest.raises(ImageReadError) as exc:  # raised limit: now it gets as far as decoding, which fails
        sio.read_image(path, max_pixels=200_000_000)
    assert "too large" not in str(exc.value)


def test_pillow_hard_limit_gives_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_declaring(30000, 30000))  # above twice Pillow's MAX_IMAGE_PIXELS: Pillow refuses
    with pytest.raises(ImageReadError) as exc:
        sio.read_image(path, max_pixels=None)
    check_error(exc, "huge.png")
    assert "900.0 megapixels" in str(exc.value) and "--max-pixels" in str(exc.value)


def test_max_pixels_applies_to_real_images(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    PILImage.fromarray(rand_u8(30, 40, 3)).save(path)
    assert sio.read_image(path, max_pixels=1200).size == (40, 30)  # exactly at the limit: read
    with pytest.raises(ImageReadError) as exc:
        sio.read_image(path, max_pixels=1199)
    assert "40x30" in str(exc.value)
    with pytest.raises(ValueError):
        sio.read_image(path, max_pixels=0)


def _frames(n: int) -> list[PILImage.Image]:
    return [PILImage.fromarray(rand_u8(16, 16, 3)) for _ in range(n)]


@pytest.mark.parametrize(("name", "fmt", "word"), [("anim.png", "PNG", "animated"), ("anim.webp", "WEBP", "animated"),
                                                    ("pages.tif", "TIFF", "multi-page")])  # fmt: skip
def test_animations_and_multipage_files_are_refused(tmp_path: Path, name: str, fmt: str, word: str) -> None:
    first, *rest = _frames(3)
    first.save(tmp_path / name, format=fmt, save_all=True, append_images=rest)
    with PILImage.open(tmp_path / name) as im:
        if getattr(im, "n_frames", 1) < 2:
            pytest.skip(f"this Pillow build writes single-frame {fmt} only")
    with pytest.raises(ImageReadError) as exc:
        sio.read_image(tmp_path / name)
    check_error(exc, name)
    assert word in str(exc.value) and "3 frames" in str(exc.value)


def test_single_frame_files_written_with_save_all_are_read(tmp_path: Path) -> None:
    (im,) = _frames(1)
    im.save(tmp_path / "one.tif", save_all=True)
    assert sio.read_image(tmp_path / "one.tif").size == (16, 16)


def test_symlink_loop_and_dangling_link_are_reported(tmp_path: Path) -> None:
    PILImage.fromarray(rand_u8(4, 4, 3)).save(tmp_path / "good.png")
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    (tmp_path / "gone.png").symlink_to("missing.png")
    for recursive in (False, True):
        found, errors = sio.find_images([tmp_path], recursive=recursive)  # must not raise
        assert errors == []
        assert sorted(p.name for p, _ in found) == ["gone.png", "good.png", "loop.jpg"]
    for name in ("loop.jpg", "gone.png"):
        with pytest.raises(ImageReadError) as exc:
            sio.read_image(tmp_path / name)
        check_error(exc, name)
        assert "link" in str(exc.value)
    _, errors = sio.find_images([tmp_path / "loop.jpg"])
    assert len(errors) == 1 and "loop.jpg" in errors[0] and "link" in errors[0]


def test_output_created_meanwhile_is_never_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers of one name without overwrite: the second fails and leaves the first one's file."""
    from sclle.imageio import write as write_mod

    target = tmp_path / "o.png"
    real_encode = write_mod._encode

    def encode_while_another_run_writes(*args, **kwargs):
        target.write_bytes(b"the other run's result")  # appears after the existence check
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(write_mod, "_encode", encode_while_another_run_writes)
    img = sio.from_array(rand_u8(5, 5, 3))
    with pytest.raises(sio.OutputExistsError) as exc:
        sio.write_image(target, img, img.rgb)
    check_error(exc, "o.png")
    assert target.read_bytes() == b"the other run's result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]  # no temporary file left
    sio.write_image(target, img, img.rgb, overwrite=True)  # asked for: replaced
    assert target.read_bytes().startswith(b"\x89PNG")


def test_exclusive_write_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAT/exFAT drives have no hard links: writing still works and still never replaces a file."""
    import errno

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    img = sio.from_array(rand_u8(5, 5, 3))
    target = sio.write_image(tmp_path / "o.png", img, img.rgb)
    assert np.array_equal(np.asarray(PILImage.open(target)), sio.to_array(img, img.rgb))
    from sclle.imageio import write as write_mod

    real_encode = write_mod._encode
    other = tmp_path / "p.png"

    def encode_while_another_run_writes(*args, **kwargs):
        other.write_bytes(b"someone else's")  # appears after the existence check
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(write_mod, "_encode", encode_while_another_run_writes)
    with pytest.raises(sio.OutputExistsError):
        sio.write_image(other, img, img.rgb)
    assert other.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png", "p.png"]  # no temporary file left


@pytest.mark.parametrize("depth16", [False, True])
def test_png_is_written_at_the_measured_zlib_level_and_stays_lossless(tmp_path: Path, depth16: bool) -> None:
    """PNGs use PNG_COMPRESS_LEVEL (3: zlib's "fast" class in the stream header), Pillow and OpenCV paths."""
    from sclle.imageio.write import PNG_COMPRESS_LEVEL

    rng = np.random.default_rng(0)
    dtype, peak = (np.uint16, 65535) if depth16 else (np.uint8, 255)
    arr = (rng.random((40, 50, 3)) ** 2 * peak).astype(dtype)
    src = tmp_path / "src.png"
    if depth16:
        cv2.imwrite(str(src), arr[..., ::-1])
    else:
        PILImage.fromarray(arr).save(src)
    img = sio.read_image(src)
    out = sio.write_image(tmp_path / "out" / "a.png", img, img.rgb)
    data = out.read_bytes()
    i = data.index(b"IDAT")
    flevel = data[i + 5] >> 6  # second byte of the zlib stream: 0 fastest, 1 fast, 2 default, 3 best
    expected = (
        0 if PNG_COMPRESS_LEVEL < 2 else 1 if PNG_COMPRESS_LEVEL < 6 else 2 if PNG_COMPRESS_LEVEL == 6 else 3
    )
    assert flevel == expected
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert back.dtype == dtype and np.array_equal(back, arr)


def test_quantize_tensor_equals_the_array_path() -> None:
    from sclle.imageio.convert import from_float, quantize_tensor

    gen = torch.Generator().manual_seed(0)
    for shape in [(1, 3, 1, 1), (1, 3, 7, 300), (3, 40, 9), (1, 3, 130, 64)]:
        t = torch.randn(*shape, generator=gen) * 0.8 + 0.5  # values below 0 and above 1 too
        flat = t.reshape(-1)
        halves = torch.arange(min(flat.numel(), 520), dtype=torch.float32) / 510  # k/2 of 255: ties
        flat[: halves.numel()] = halves
        q = quantize_tensor(t)
        assert q.dtype == np.uint8 and q.shape == (shape[-2], shape[-1], 3) and q.flags.c_contiguous
        assert np.array_equal(q, from_float(sio.from_tensor(t), np.uint8)), shape
    assert quantize_tensor(torch.tensor([0.5 / 255, 1.5 / 255, 2.5 / 255]).view(3, 1, 1)).tolist() == [
        [[0, 2, 2]]
    ]
    with pytest.raises(ValueError, match="shape"):
        quantize_tensor(torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize(
    ("name", "mode"),
    [("rgb.png", "RGB"), ("rgb.jpg", "RGB"), ("rgba.png", "RGBA"), ("gray.png", "L"), ("g16.png", "I;16")],
)
def test_writing_the_engines_tensor_gives_the_same_file_as_the_array(
    tmp_path: Path, name: str, mode: str
) -> None:
    rng = np.random.default_rng(1)
    if mode == "I;16":
        PILImage.fromarray((rng.random((9, 11)) * 60000).astype(np.uint16)).save(tmp_path / name)
    else:
        arr = (rng.random((9, 11, 4)) * 255).astype(np.uint8)
        PILImage.fromarray(arr).convert(mode).save(tmp_path / name)
    img = sio.read_image(tmp_path / name)
    t = torch.from_numpy(img.rgb.transpose(2, 0, 1).copy())[None] * 1.3 - 0.05
    a = sio.write_image(tmp_path / "out" / f"array_{name}", img, sio.from_tensor(t))
    b = sio.write_image(tmp_path / "out" / f"tensor_{name}", img, t)
    assert a.read_bytes() == b.read_bytes()
    bad = t.clone()
    bad[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sio.write_image(tmp_path / "out" / f"nan_{name}", img, bad)
    with pytest.raises(ValueError, match="shape"):
        sio.write_image(tmp_path / "out" / f"shape_{name}", img, t[:, :2])
    assert not (tmp_path / "out" / f"nan_{name}").exists()


def test_to_float_exact_for_every_integer_level_and_never_aliases():
    from sclle.imageio.convert import to_float

    for dtype, top in ((np.uint8, 255.0), (np.uint16, 65535.0)):
        levels = np.arange(int(top) + 1).astype(dtype)
        want = levels.astype(np.float32)
        want /= np.float32(top)  # the two-pass reference: cast, then divide in float32
        got = to_float(levels)
        assert got.dtype == np.float32 and np.array_equal(got, want)
        assert got[0] == 0.0 and got[-1] == 1.0
    f = np.full((2, 2, 3), 0.25, dtype=np.float32)
    out = to_float(f)
    out[0, 0, 0] = 1.0
    assert f[0, 0, 0] == 0.25  # a float source is copied, not modified

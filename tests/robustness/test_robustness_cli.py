"""Seeded fuzzing of ``sclle enhance`` through the real command line (``sclle.cli.main``, in-process).

Malformed files of every supported format (truncations at many offsets, random bytes, bit flips, absurd
declared sizes) and random option combinations, in and out of their ranges, must keep the promises of
the README's "What sclle promises" table:

* no traceback, and the exit status documented: 0 all written, 1 some input failed, 2 usage error;
* every good input is written; every input is accounted for (written, or named on a failed line);
* nothing is written outside ``-o``; no temporary or partial file is left; inputs stay byte-identical.

The seed is fixed, so a failure names a case that reproduces. Run with ``pytest -s`` to see the counts.
"""

from __future__ import annotations

import io
import math
import random
import struct
import sys
import zlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from sclle.cli import main

pytestmark = pytest.mark.robustness

SEED = 20240611
FORMATS = {"jpg": "JPEG", "png": "PNG", "bmp": "BMP", "tif": "TIFF", "webp": "WEBP"}
KINDS = ["truncate"] * 10 + ["random", "magic+random"] + ["bitflip"] * 6 + ["absurd"] * 3  # per batch


def run_cli(args: list[str]) -> tuple[int, str]:
    """``sclle ARGS`` as the console script runs it; any escaping exception is a broken promise."""
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    with mock.patch.object(sys, "argv", ["sclle", *args]), redirect_stdout(out), redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:  # noqa: BLE001 - reported with the arguments that reproduce it
            pytest.fail(f"sclle {' '.join(args)} raised {type(e).__name__}: {e}")
    return code, out.getvalue() + err.getvalue()


def good_image(rng: np.random.Generator, ext: str, kind: int) -> bytes:
    """A small valid file of the format: RGB, gray, RGBA or 16-bit where the format has them."""
    h, w = int(rng.integers(8, 40)), int(rng.integers(8, 40))
    fmt = FORMATS[ext]
    if kind == 1:
        im = Image.fromarray(rng.integers(0, 90, (h, w), dtype=np.uint8), "L")
    elif kind == 2 and fmt in ("PNG", "TIFF", "WEBP"):
        im = Image.fromarray(rng.integers(0, 90, (h, w, 4), dtype=np.uint8), "RGBA")
    elif kind == 3 and fmt == "PNG":
        im = Image.fromarray(rng.integers(0, 9000, (h, w), dtype=np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 90, (h, w, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def absurd_size(data: bytes, ext: str, rng: np.random.Generator) -> bytes:
    """Patch the declared width/height to something huge (or zero), where the format keeps it."""
    w, h = [int(v) for v in rng.choice([0, 1, 65535, 40000, 2**31 - 1], 2)]
    b = bytearray(data)
    if ext == "png" and len(b) > 33:
        b[16:24] = struct.pack(">II", w, h)
        if rng.random() < 0.7:  # a correct CRC gets past the first sanity check
            b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    elif ext == "bmp" and len(b) > 26:
        b[18:26] = struct.pack(
            "<ii", min(w, 2**31 - 1), min(h, 2**31 - 1) * (-1 if rng.random() < 0.5 else 1)
        )
    elif ext == "jpg":
        i = next((k for k in range(2, len(b) - 9) if b[k] == 0xFF and b[k + 1] in (0xC0, 0xC2)), None)
        if i is not None:
            b[i + 5 : i + 9] = struct.pack(">HH", h & 0xFFFF, w & 0xFFFF)
    elif ext == "tif":
        order = "<" if b[:2] == b"II" else ">"
        (ifd,) = struct.unpack_from(order + "I", b, 4)
        (n,) = struct.unpack_from(order + "H", b, ifd)
        for k in range(n):
            e = ifd + 2 + 12 * k
            tag, typ = struct.unpack_from(order + "HH", b, e)
            if tag in (256, 257):
                value = w if tag == 256 else h
                if typ == 3:
                    struct.pack_into(order + "H", b, e + 8, value & 0xFFFF)
                else:
                    struct.pack_into(order + "I", b, e + 8, value)
    elif ext == "webp" and len(b) > 30:
        if b[12:16] == b"VP8X":
            b[24:30] = struct.pack("<I", max(w - 1, 0))[:3] + struct.pack("<I", max(h - 1, 0))[:3]
        elif b[12:16] == b"VP8 ":
            b[26:30] = struct.pack("<HH", w & 0x3FFF, h & 0x3FFF)
    return bytes(b)


def malformed(rng: np.random.Generator, good: bytes, ext: str, kind: str) -> bytes:
    if kind == "truncate":
        cut = (
            int(rng.integers(0, len(good)))
            if rng.random() < 0.6
            else int(rng.integers(0, min(64, len(good))))
        )
        return good[:cut]
    if kind == "random":
        return rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes()
    if kind == "magic+random":  # right signature, garbage after it
        return good[:12] + rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8).tobytes()
    if kind == "bitflip":
        b = bytearray(good)
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(b)
    if kind == "absurd":
        return absurd_size(good, ext, rng)
    raise AssertionError(kind)


def snapshot(root: Path, skip: Path | None = None) -> dict[str, bytes | None]:
    """Every path under ``root`` (except below ``skip``) with its bytes."""
    snap = {}
    for p in sorted(root.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        snap[p.relative_to(root).as_posix()] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return snap


def check_invariants(case: str, root: Path, src: Path, out: Path, before: dict, code: int, text: str,
                     good: list[Path], expected_code: set[int]) -> None:  # fmt: skip
    where = f"[{case}] exit {code}; output tail:\n{text[-1500:]}"
    assert "Traceback" not in text, where
    assert code in expected_code, where
    assert snapshot(root, skip=out) == before, f"{where}\nsomething outside -o changed (inputs included)"
    if out.exists():
        leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
        assert not leftovers, f"{where}\ntemporary files left: {leftovers}"
    if code == 2:
        assert not out.exists() or not any(out.iterdir()), f"{where}\nusage error but files were written"
        return
    written = {p.stem for p in out.rglob("*") if p.is_file()} if out.exists() else set()
    for g in good:
        assert any(s.startswith(g.stem) for s in written), f"{where}\ngood input {g.name} not written"
    reported = "\n".join(ln for ln in text.splitlines() if ln.startswith(("failed:", "skipped:")))
    for p in src.iterdir():
        if p.is_file():
            assert any(s.startswith(p.stem) for s in written) or p.name in reported, (
                f"{where}\n{p.name} neither written nor reported"
            )
    assert (code == 1) == ("failed:" in text), f"{where}\nexit 1 exactly when some input failed"


@pytest.mark.parametrize("ext", list(FORMATS))
def test_malformed_files_never_break_a_batch(
    tmp_path: Path, dce_weights: Path, record_cases: dict, ext: str
) -> None:
    rng = np.random.default_rng([SEED, list(FORMATS).index(ext)])
    cases = 0
    for round_ in range(3):
        root = tmp_path / f"r{round_}"
        src = root / "in"
        src.mkdir(parents=True)
        good = []
        for k in range(3):
            p = src / f"good{k}.{ext}"
            p.write_bytes(good_image(rng, ext, k + round_))
            good.append(p)
        base = good_image(rng, ext, round_)
        for i, kind in enumerate(KINDS):
            (src / f"bad{i:02d}_{kind.replace('+', '_')}.{ext}").write_bytes(malformed(rng, base, ext, kind))
            cases += 1
        before = snapshot(root, skip=root / "out")
        out = root / "out"
        code, text = run_cli(["enhance", str(src), "-o", str(out), "-m", str(dce_weights), "-q"])
        # a bit flip may leave a decodable image: a bad file that decodes is fine; the good ones must be written
        check_invariants(f"{ext} round {round_}", root, src, out, before, code, text, good, {0, 1})
    record_cases[f"malformed .{ext} files"] = cases
    print(f"\nrobustness: {cases} malformed .{ext} files in {round_ + 1} batches")


OPTIONS: list[tuple[str, list, list]] = [
    # (option, valid values, invalid values); None = a flag
    ("--strength", ["0", "0.5", "1", "2"], ["-1", "2.5", "nan", "abc"]),
    ("--fast", [None], []),
    ("--fast-scale", ["0.25", "1"], ["0", "-0.5", "1.5", "inf"]),
    ("--tile", ["16", "32", "0"], ["3", "-1", "x"]),
    ("--format", ["png", "jpg", "tiff", "webp", "bmp", "JPEG"], ["xyz", ""]),
    ("--quality", ["1", "50", "100"], ["0", "101"]),
    ("--suffix", ["_e", "-x.y", ""], ["/../esc", "a/b", "..", "a\\b"]),
    ("--threads", ["1", "2"], ["0", "-2", "100000"]),
    ("--max-pixels", ["100000000", "500"], ["0", "-1"]),
    ("--compare", [None], []),
    ("--overwrite", [None], []),
    ("--recursive", [None], []),
    ("--precision", ["auto", "fp32"], []),
]


@pytest.mark.slow
def test_random_option_combinations(tmp_path: Path, dce_weights: Path, record_cases: dict) -> None:
    rnd = random.Random(SEED)
    rng = np.random.default_rng(SEED)
    n_runs = 60
    invalid_runs = 0
    for run in range(n_runs):
        root = tmp_path / f"c{run:02d}"
        src = root / "in"
        (src / "sub").mkdir(parents=True)
        sizes = {}
        for k, ext in enumerate(rnd.sample(list(FORMATS), 3)):
            p = (src / "sub" if k == 2 else src) / f"img{k}.{ext}"
            p.write_bytes(good_image(rng, ext, k))
            sizes[p] = math.prod(Image.open(p).size)
        bad = src / "broken.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
        args = ["enhance", str(src), "-o", str(root / "out"), "-m", str(dce_weights), "-q", "--device", "cpu"]
        invalid = False
        max_pixels = 100_000_000
        recursive = False
        for name, valid, wrong in rnd.sample(OPTIONS, rnd.randint(1, 5)):
            use_wrong = bool(wrong) and rnd.random() < 0.25
            value = rnd.choice(wrong if use_wrong else valid)
            invalid = invalid or use_wrong
            args += [name] if value is None else [name, value]
            if name == "--max-pixels" and not use_wrong:
                max_pixels = int(value)
            recursive = recursive or name == "--recursive"
        before = snapshot(root, skip=root / "out")
        code, text = run_cli(args)
        fast_and_tile = "--tile" in args and ("--fast" in args or "--fast-scale" in args)
        if invalid:
            expected = {2}
            invalid_runs += 1
        elif fast_and_tile:  # refused as a usage error, or done as tiles of the fast path: both documented
            expected = {1, 2}
        else:
            expected = {1}  # broken.png always fails
        good = [p for p, n in sizes.items() if n <= max_pixels and (recursive or p.parent == src)]
        check_invariants(" ".join(args[5:]), root, src, root / "out", before, code, text, good, expected)
    record_cases["CLI runs with random options"] = n_runs
    print(f"\nrobustness: {n_runs} option combinations ({invalid_runs} with a value out of range)")


@pytest.mark.slow
def test_corrupt_weight_files(tmp_path: Path, dce_weights: Path, record_cases: dict) -> None:
    """Truncated, bit-flipped, random and non-finite weight files: a one-line refusal or a normal run."""
    import torch

    rng = np.random.default_rng(SEED)
    good = dce_weights.read_bytes()
    state = torch.load(dce_weights, weights_only=True)
    variants: list[bytes] = []
    for _ in range(6):
        variants.append(good[: int(rng.integers(0, len(good)))])
    for _ in range(6):
        b = bytearray(good)
        for _ in range(int(rng.integers(1, 17))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        variants.append(bytes(b))
    variants.append(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for bad in (float("nan"), float("inf")):
        poisoned = {k: v.clone() for k, v in state.items()}
        first = next(iter(poisoned))
        poisoned[first].view(-1)[0] = bad
        buf = io.BytesIO()
        torch.save(poisoned, buf)
        variants.append(buf.getvalue())
    for i, data in enumerate(variants):
        root = tmp_path / f"w{i:02d}"
        src = root / "in"
        src.mkdir(parents=True)
        (src / "a.png").write_bytes(good_image(rng, "png", 0))
        (root / "weights.pth").write_bytes(data)
        before = snapshot(root, skip=root / "out")
        out = root / "out"
        code, text = run_cli(["enhance", str(src), "-o", str(out), "-m", str(root / "weights.pth"), "-q"])
        case = f"weights variant {i}"
        assert "Traceback" not in text and code in (0, 1, 2), f"[{case}] exit {code}: {text[-1500:]}"
        assert snapshot(root, skip=out) == before, f"[{case}] something outside -o changed"
        if out.exists():
            assert not [p for p in out.rglob("*") if p.name.startswith(".")], f"[{case}] temporary files left"
        if i >= len(variants) - 2:  # the NaN and inf state dicts
            assert code == 2 and "non-finite" in text, f"[{case}] non-finite weights not refused: {text}"
        if code == 2:
            lines = [ln for ln in text.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), f"[{case}] not one error line: {text}"
        if code == 0:  # loaded: then the result must be a real image (non-finite weights must not get here)
            arr = np.asarray(Image.open(out / "a.png"))
            assert arr.shape[:2] == Image.open(src / "a.png").size[::-1], f"[{case}] wrong output size"
    record_cases["corrupt weight files"] = len(variants)
    print(f"\nrobustness: {len(variants)} corrupt weight files")

r"""Dirty datasets for reliability tests: clean built-in scenes with a known share of planted bad records.

`make_dirty_dataset` writes the built-in scenes (`write_builtin_dataset`), then replaces a chosen set of records by
bad ones, spread evenly over these kinds, and records exactly what it planted in `manifest.json`:

| kind | what is planted | reason the readers report (csv / wds) |
|---|---|---|
| `truncated_jpeg` | the first half of a real JPEG | `truncated` |
| `truncated_png` | the first half of a real PNG | `truncated` |
| `zero_byte` | an empty `.jpg` | `empty` |
| `text_as_jpg` | a text file named `.jpg` | `not_an_image` |
| `missing_path` | csv: a path to no file; wds: a sample with a caption but no image | `missing` / `no_image` |
| `empty_caption` | a real image whose caption is empty (csv: `""`; wds: an empty `.txt`) | `no_text` |
| `invalid_utf8_caption` | a real image whose caption holds bytes that are not UTF-8 (`\xff\xfe`) | `bad_text` |
| `too_large` | a real 20,000 x 20,000 1-bit PNG (48 KB; 400M pixels > the 100M limit) | `too_large` |

Planted too, but *valid* (not counted as bad, they must train): `one_pixel` records, real 1x1 JPEG / PNG images
(they must survive random-resized-crop). `manifest["expected_skips"]` maps reason -> planted count per format.

`plant_invalid_utf8_caption` writes a one-record CSV / tar with an undecodable caption, for unit tests.

Usage:

    python -m florence_keras.data.dirty_data --out_dir=/tmp/dirty --num_records=2000 --bad_fraction=0.05
    python recipes/pretrain_unicl.py --train_data=/tmp/dirty/train.csv --data_format=csv --model_dir=/tmp/run ...
    python -m florence_keras.data.dirty_data --out_dir=/tmp/dirty --check=/tmp/run/data_skips.json
"""

import argparse
import csv
import io
import json
import os
import random
import struct
import tarfile
import zlib

import cv2
import numpy as np

from florence_keras.data.builtin_dataset import write_builtin_dataset

BAD_KINDS = ("truncated_jpeg", "truncated_png", "zero_byte", "text_as_jpg", "missing_path", "empty_caption",
             "invalid_utf8_caption", "too_large")
VALID_KINDS = ("one_pixel",)
EXPECTED_REASON = {
    "csv": {"truncated_jpeg": "truncated", "truncated_png": "truncated", "zero_byte": "empty",
            "text_as_jpg": "not_an_image", "missing_path": "missing", "empty_caption": "no_text",
            "invalid_utf8_caption": "bad_text", "too_large": "too_large"},
    "wds": {"truncated_jpeg": "truncated", "truncated_png": "truncated", "zero_byte": "empty",
            "text_as_jpg": "not_an_image", "missing_path": "no_image", "empty_caption": "no_text",
            "invalid_utf8_caption": "bad_text", "too_large": "too_large"},
}
FORMATS = tuple(EXPECTED_REASON)
HUGE_SIDE = 20_000
# Bytes that are not UTF-8, held in a str as lone surrogates and written back as the same bytes.
INVALID_UTF8 = b"\xff\xfe".decode("utf-8", "surrogateescape")


def _png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def huge_png(width=HUGE_SIDE, height=HUGE_SIDE):
    """A valid, fully encoded 1-bit grayscale PNG of `width` x `height` (all black), a few tens of KB."""
    row = b"\0" + b"\0" * ((width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_piece = 1000
    pieces = [compressor.compress(row * min(rows_per_piece, height - start))
              for start in range(0, height, rows_per_piece)]
    pieces.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(pieces))
            + _png_chunk(b"IEND", b""))


def _encode(image_rgb, extension):
    ok, data = cv2.imencode(extension, np.ascontiguousarray(image_rgb[:, :, ::-1]))
    if not ok:
        raise RuntimeError(f"cv2 could not encode a {extension} image")
    return data.tobytes()


def _planted_kinds(num_records, bad_fraction, num_one_pixel, rng):
    """index -> kind for the planted records: round(bad_fraction * N) bad ones, spread evenly over BAD_KINDS."""
    num_bad = int(round(bad_fraction * num_records))
    if num_bad + num_one_pixel > num_records:
        raise ValueError(f"Cannot plant {num_bad} bad and {num_one_pixel} one-pixel records in {num_records}.")
    chosen = rng.sample(range(num_records), num_bad + num_one_pixel)
    kinds = {}
    for position, index in enumerate(chosen[:num_bad]):
        kinds[index] = BAD_KINDS[position % len(BAD_KINDS)]
    for index in chosen[num_bad:]:
        kinds[index] = "one_pixel"
    return kinds


def _read_clean_rows(csv_path):
    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return [(row[0], row[1]) for row in rows[1:]]


def _add_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def make_dirty_dataset(out_dir, num_records=2000, bad_fraction=0.05, num_one_pixel=None, image_size=64, seed=0,
                       formats=FORMATS, num_shards=4):
    """Writes built-in scenes with planted bad records as CSV (and webdataset tar shards) plus `manifest.json`.

    Args:
        out_dir: output directory.
        num_records: records in total (clean + planted).
        bad_fraction: share of bad records; `round(bad_fraction * num_records)` are planted, spread evenly (in
            turn) over `BAD_KINDS`.
        num_one_pixel: valid 1x1 images planted besides (default: as many as one bad kind gets).
        image_size: side of the clean scenes.
        seed: choice of the planted records and of the scenes.
        formats: subset of `FORMATS` ("csv", "wds").
        num_shards: webdataset shards.

    Returns:
        The manifest (dict), also written to `out_dir/manifest.json`: `paths` per format, `planted` (kind -> list
        of `{"index", "source"}`), `counts` per kind, `expected_skips` (format -> reason -> count), `num_bad`,
        `num_valid`.
    """
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ValueError(f"`formats` must be a subset of {FORMATS}. Received: {formats!r}")
    rng = random.Random(seed)
    if num_one_pixel is None:
        num_one_pixel = max(1, int(round(bad_fraction * num_records)) // len(BAD_KINDS))
    kinds = _planted_kinds(num_records, bad_fraction, num_one_pixel, rng)
    os.makedirs(out_dir, exist_ok=True)
    clean = write_builtin_dataset(os.path.join(out_dir, "clean"), num_records, 0, image_size=image_size, seed=seed,
                                  formats=("csv",))
    rows = _read_clean_rows(clean["csv"]["train"])
    dirty_dir = os.path.join(out_dir, "dirty")
    os.makedirs(dirty_dir, exist_ok=True)
    huge = huge_png()
    records = []  # (name, image bytes or None (missing), caption, kind)
    for index, (relative_path, caption) in enumerate(rows):
        name = f"r{index:06d}"
        with open(os.path.join(clean["root"], relative_path), "rb") as f:
            jpeg = f.read()
        kind = kinds.get(index)
        extension = "jpg"
        if kind is None:
            data = jpeg
        else:
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
            if kind == "truncated_jpeg":
                data = jpeg[: len(jpeg) // 2]
            elif kind == "truncated_png":
                png = _encode(image, ".png")
                data, extension = png[: len(png) // 2], "png"
            elif kind == "zero_byte":
                data = b""
            elif kind == "text_as_jpg":
                data = f"This is not an image. Caption: {caption}\n".encode("utf-8")
            elif kind == "missing_path":
                data = None
            elif kind == "empty_caption":
                data, caption = jpeg, ""
            elif kind == "invalid_utf8_caption":
                data, caption = jpeg, f"{caption} {INVALID_UTF8}"
            elif kind == "too_large":
                data, extension = huge, "png"
            elif kind == "one_pixel":
                extension = "jpg" if index % 2 else "png"
                data = _encode(image[image_size // 2: image_size // 2 + 1, image_size // 2: image_size // 2 + 1],
                               "." + extension)
            else:  # pragma: no cover
                raise AssertionError(kind)
        records.append((name, data, caption, kind, extension, relative_path))

    paths = {}
    planted = {kind: [] for kind in BAD_KINDS + VALID_KINDS}
    if "csv" in formats:
        csv_rows = []
        for index, (name, data, caption, kind, extension, relative_path) in enumerate(records):
            if kind is None:
                path = os.path.join("clean", relative_path)
            else:
                path = os.path.join("dirty", f"{name}_{kind}.{extension}")
                if data is not None:
                    with open(os.path.join(out_dir, path), "wb") as f:
                        f.write(data)
                planted[kind].append({"index": index, "format": "csv", "source": os.path.join(out_dir, path)})
            csv_rows.append((path, caption))
        paths["csv"] = os.path.join(out_dir, "train.csv")
        with open(paths["csv"], "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("filepath", "caption"))
            writer.writerows(csv_rows)
    if "wds" in formats:
        os.makedirs(os.path.join(out_dir, "wds"), exist_ok=True)
        paths["wds"] = []
        bounds = np.linspace(0, len(records), num_shards + 1).astype(int)
        for shard in range(num_shards):
            shard_path = os.path.join(out_dir, "wds", f"train-{shard:06d}.tar")
            with tarfile.open(shard_path, "w", format=tarfile.USTAR_FORMAT) as tar:
                for index in range(bounds[shard], bounds[shard + 1]):
                    name, data, caption, kind, extension, _ = records[index]
                    if data is not None:
                        _add_member(tar, f"{name}.{extension}", data)
                    _add_member(tar, f"{name}.txt", caption.encode("utf-8", "surrogateescape"))
                    if kind is not None:
                        planted[kind].append({"index": index, "format": "wds", "source": f"{shard_path}:{name}"})
            paths["wds"].append(shard_path)

    counts = {kind: sum(1 for k in kinds.values() if k == kind) for kind in BAD_KINDS + VALID_KINDS}
    expected = {}
    for data_format in formats:
        reasons = {}
        for kind in BAD_KINDS:
            reason = EXPECTED_REASON[data_format][kind]
            reasons[reason] = reasons.get(reason, 0) + counts[kind]
        expected[data_format] = {reason: n for reason, n in sorted(reasons.items()) if n}
    manifest = {
        "num_records": num_records,
        "bad_fraction": bad_fraction,
        "num_bad": sum(counts[kind] for kind in BAD_KINDS),
        "num_valid": num_records - sum(counts[kind] for kind in BAD_KINDS),
        "counts": counts,
        "expected_skips": expected,
        "expected_reason_of_kind": {f: EXPECTED_REASON[f] for f in formats},
        "valid_planted": {"one_pixel": "real 1x1 images (JPEG and PNG): valid, must be trained on, not skipped"},
        "paths": paths,
        "planted": {kind: entries for kind, entries in planted.items() if entries},
        "seed": seed,
        "image_size": image_size,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def plant_invalid_utf8_caption(out_dir, image_path, formats=FORMATS):
    """Writes a one-record CSV and tar shard whose caption holds invalid UTF-8 bytes; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    caption = b"a red \xff\xfe circle"
    paths = {}
    if "csv" in formats:
        paths["csv"] = os.path.join(out_dir, "invalid_utf8.csv")
        with open(paths["csv"], "wb") as f:
            f.write(b"filepath,caption\n" + os.path.abspath(image_path).encode("utf-8") + b"," + caption + b"\n")
    if "wds" in formats:
        paths["wds"] = os.path.join(out_dir, "invalid_utf8.tar")
        with open(image_path, "rb") as f:
            image = f.read()
        with tarfile.open(paths["wds"], "w", format=tarfile.USTAR_FORMAT) as tar:
            _add_member(tar, "bad.jpg", image)
            _add_member(tar, "bad.txt", caption)
    return paths


def compare_with_report(manifest, report, data_format):
    """Planted vs counted skipped records, per reason.

    Args:
        manifest: the dict `make_dirty_dataset` returned (or its `manifest.json`).
        report: a skip report with `skipped_records_by_reason` (`model_dir/data_skips.json` of a training run).
        data_format: "csv" or "wds".

    Returns:
        `(rows, equal)`: rows `(reason, planted, counted)` sorted by reason, and whether they all agree — the
        counts, and (when the report lists its records) each skipped record is a planted bad one, skipped for the
        reason its kind predicts.
    """
    planted = manifest["expected_skips"][data_format]
    counted = report["skipped_records_by_reason"]
    reasons = sorted(set(planted) | set(counted))
    rows = [(reason, planted.get(reason, 0), counted.get(reason, 0)) for reason in reasons]
    equal = all(p == c for _, p, c in rows)
    if "records" in report:
        expected = {entry["source"]: manifest["expected_reason_of_kind"][data_format][kind]
                    for kind, entries in manifest["planted"].items() if kind in BAD_KINDS
                    for entry in entries if entry["format"] == data_format}
        equal = equal and report["records"] == expected
    return rows, equal


def main(argv=None):
    parser = argparse.ArgumentParser(description="Writes a dirty dataset with a manifest of planted bad records.")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--num_records", type=int, default=2000)
    parser.add_argument("--bad_fraction", type=float, default=0.05)
    parser.add_argument("--num_one_pixel", type=int, default=None)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--check", default=None,
                        help="instead of writing: compare OUT_DIR/manifest.json with this skip report "
                             "(MODEL_DIR/data_skips.json); exit status 1 if they differ")
    parser.add_argument("--check_format", default="csv")
    args = parser.parse_args(argv)
    if args.check:
        with open(os.path.join(args.out_dir, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        with open(args.check, encoding="utf-8") as f:
            report = json.load(f)
        rows, equal = compare_with_report(manifest, report, args.check_format)
        print("| reason | planted | counted |\n|---|---|---|")
        for reason, planted, counted in rows:
            print(f"| {reason} | {planted} | {counted} |")
        total_planted, total_counted = sum(r[1] for r in rows), sum(r[2] for r in rows)
        print(f"| total | {total_planted} | {total_counted} |")
        print(f"skipped reads (all epochs): {report['skipped_reads']}; equal per reason: {equal}")
        return 0 if equal else 1
    manifest = make_dirty_dataset(args.out_dir, args.num_records, args.bad_fraction, args.num_one_pixel,
                                  args.image_size, args.seed, tuple(args.formats.split(",")))
    print(json.dumps({k: manifest[k] for k in ("num_records", "num_bad", "counts", "expected_skips", "paths")},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Datasets, subsets and validation splits for the labs.

`load_dataset(name, ...)` returns a `Dataset` whose images are float32 in
[0, 1], flattened to (N, features), with integer labels. Names:

| name | source | offline |
|---|---|---|
| `mnist`, `fashion_mnist` | `keras.datasets` (cached under the Keras home) | only once cached |
| `digits` | scikit-learn's bundled 8x8 digits (1,797 images) | yes |
| `idx:PATH` | a folder of MNIST-format idx files (gzip or raw) | yes |
| `auto` | the idx folder named by `COURSEKIT_MNIST` when set, else `mnist` when it can be had, else `digits` (saying so) | yes |

Splits. `digits` and an idx folder holding only one split (for example only
`t10k-*`) are split the same deterministic way, whatever the run's seed: the
images are permuted with a fixed seed (0) and the last 1/6 becomes the test
set (MNIST's own 60,000 : 10,000 ratio). `train_size=N` then takes the first N
training images, as the reference experiments do, and `validation_fraction`
carves a validation set out of those N with the run's `seed` (disjoint from
the test set by construction).
"""

import dataclasses
import gzip
import os
import pathlib
import struct
import warnings
import zlib

import numpy as np

DATASET_NAMES = ("mnist", "fashion_mnist", "digits", "auto", "idx:PATH")
MNIST_FOLDER_VARIABLE = "COURSEKIT_MNIST"  # `auto` reads MNIST's idx files from this folder when it is set
_SPLIT_SEED = 0
_TEST_FRACTION = 1 / 6


class DatasetUnavailable(RuntimeError):
    """A dataset that needs a download could not be fetched (no internet, no cache)."""


@dataclasses.dataclass
class Dataset:
    """One dataset, split and ready: arrays are NumPy, images float32 in [0, 1]."""

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple

    @property
    def num_features(self):
        return self.x_train.shape[1]

    @property
    def num_classes(self):
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def split(self, name):
        """`(x, y)` of the split "train", "val" or "test"."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"Unknown split {name!r}; valid: train, val, test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def summary(self):
        """Sizes and source as a dict, for config.json."""
        return {
            "name": self.name,
            "source": self.source,
            "train": len(self.x_train),
            "validation": len(self.x_val),
            "test": len(self.x_test),
            "features": self.num_features,
            "image_shape": list(self.image_shape),
        }


def load_dataset(name, *, train_size=None, validation_fraction=0.0, seed=0):
    """Load, subset, normalise and split a dataset by name (see the module docstring).

    Only the images the run uses are converted to float32: the first `train_size` training
    images and the test images (for an idx folder, only those rows are kept while the file is
    read, so a large file costs memory for what is used, not for what it holds).

    Args:
        name: "mnist", "fashion_mnist", "digits", "auto" or "idx:PATH".
        train_size: Keep only the first `train_size` training images. Defaults
            to all of them.
        validation_fraction: Fraction in [0, 1) of the kept training images held
            out, chosen with `seed`, as the validation split. Defaults to 0.
        seed: Seed of the validation split. Defaults to 0.

    Raises:
        ValueError: unknown name, bad sizes, or a missing, corrupt, truncated or oversized idx file.
        DatasetUnavailable: `mnist`/`fashion_mnist` could not be downloaded.
    """
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be a string; received {name!r}")
    if not (isinstance(validation_fraction, (int, float)) and 0.0 <= validation_fraction < 1.0):
        raise ValueError(f"validation_fraction must be in [0, 1); received validation_fraction={validation_fraction!r}")
    if train_size is not None and (
        not isinstance(train_size, (int, np.integer)) or isinstance(train_size, bool) or train_size < 1
    ):
        raise ValueError(f"train_size must be a positive integer; received train_size={train_size!r}")
    (x_train, y_train), (x_test, y_test), source, image_shape = _load_raw(name, train_size)
    n_val = int(round(validation_fraction * len(x_train)))
    if validation_fraction > 0 and (n_val == 0 or n_val == len(x_train)):
        raise ValueError(f"validation_fraction={validation_fraction} of {len(x_train)} images leaves an empty split")
    # Without a validation split the training images are kept as they are (no copy).
    order = np.random.default_rng(seed).permutation(len(x_train)) if n_val else slice(None)
    val_idx, train_idx = (order[:n_val], order[n_val:]) if n_val else (slice(0), slice(None))
    return Dataset(
        name=name,
        source=source,
        x_train=x_train[train_idx],
        y_train=y_train[train_idx],
        x_val=x_train[val_idx],
        y_val=y_train[val_idx],
        x_test=x_test,
        y_test=y_test,
        image_shape=image_shape,
    )


def _kept(available, train_size, name):
    """How many training images a run keeps: `train_size`, checked against the `available` ones."""
    if train_size is None:
        return available
    if train_size > available:
        raise ValueError(f"train_size={train_size} is larger than the {available} training images of {name!r}")
    return int(train_size)


def _load_raw(name, train_size=None):
    """((x_train, y_train), (x_test, y_test), source, image_shape), images flattened in [0, 1],
    the training split already cut to its first `train_size` images."""
    if name.startswith("idx:"):
        return _load_idx_folder(name[len("idx:") :], train_size, name)
    if name == "digits":
        return _load_digits(train_size, name)
    if name in ("mnist", "fashion_mnist"):
        return _load_keras(name, train_size)
    if name == "auto":
        if os.environ.get(MNIST_FOLDER_VARIABLE):  # a folder of MNIST idx files: offline, as `idx:PATH`
            try:
                return _load_idx_folder(os.environ[MNIST_FOLDER_VARIABLE], train_size, name)
            except ValueError as error:
                raise ValueError(f"{MNIST_FOLDER_VARIABLE}: {error}") from None
        try:
            return _load_keras("mnist", train_size, name)
        except DatasetUnavailable as error:
            warnings.warn(f"auto dataset: {error}; using the bundled 8x8 digits instead", stacklevel=3)
            train, test, source, shape = _load_digits(train_size, name)
            return train, test, f"{source} (auto: mnist unavailable)", shape
    raise ValueError(f"Unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")


def _flatten(images, scale=255.0):
    """(N, ...) images as float32 (N, features) in [0, 1], converted once (no second float copy)."""
    flat = images.reshape(len(images), -1).astype("float32")
    flat /= scale
    return flat


def _load_keras(name, train_size=None, shown_name=None):
    import keras

    module = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as error:  # urllib/HTTP/OS errors differ by platform
        raise DatasetUnavailable(
            f"could not load {name} through keras.datasets ({type(error).__name__}: {error}); "
            "without internet use 'digits' or 'idx:PATH'"
        ) from None
    kept = _kept(len(x_train), train_size, shown_name or name)
    source = f"keras.datasets.{name}"
    return (
        (_flatten(x_train[:kept]), y_train[:kept].astype("int32")),
        (_flatten(x_test), y_test.astype("int32")),
        source,
        x_train.shape[1:],
    )


def _split_rows(count):
    """(training rows, test rows) of a single-split dataset of `count` images: a fixed permutation
    (seed 0), its last 1/6 (at least one image) the test set."""
    if count < 2:
        raise ValueError(f"{count} image(s) cannot be split into a training and a test set (at least 2 are needed)")
    order = np.random.default_rng(_SPLIT_SEED).permutation(count)
    n_test = max(int(round(count * _TEST_FRACTION)), 1)
    return order[:-n_test], order[-n_test:]


def _load_digits(train_size=None, name="digits"):
    from sklearn.datasets import load_digits

    digits = load_digits()
    train, test = _split_rows(len(digits.images))
    train = train[: _kept(len(train), train_size, name)]
    labels = digits.target.astype("int32")
    return (
        (_flatten(digits.images[train], 16.0), labels[train]),
        (_flatten(digits.images[test], 16.0), labels[test]),
        "scikit-learn load_digits (8x8, bundled)",
        (8, 8),
    )


# ----------------------------------------------------------------------------
# MNIST-format idx files
# ----------------------------------------------------------------------------
#
# A data file is untrusted: its header is checked against the file before anything is
# allocated (magic number, dimensions, the declared size against the file's size, or, for
# gzip, against what the stream decompresses to, streamed through once), a file declaring more
# than COURSEKIT_IDX_MAX_BYTES (default 1 GiB) of data is refused, and only the rows a run
# uses are kept while the file is streamed through. Every problem is a one-line ValueError.

_IDX_IMAGES, _IDX_LABELS = 2051, 2049
IDX_MAX_BYTES_VARIABLE = "COURSEKIT_IDX_MAX_BYTES"
IDX_MAX_BYTES = 2**30  # the default: 1 GiB of uint8 data (4 GiB as float32), 22 times MNIST's training images
IDX_MAX_ITEMS = 10_000_000  # a permutation of the items is made when a folder holds one split
_CHUNK_BYTES = 4 * 2**20


@dataclasses.dataclass(frozen=True)
class IdxHeader:
    """What an idx file's header declares: `count` items of `item_shape` uint8 values after `offset` bytes."""

    path: pathlib.Path
    gzipped: bool
    magic: int
    count: int
    item_shape: tuple
    offset: int

    @property
    def item_bytes(self):
        return int(np.prod(self.item_shape, dtype=np.int64))

    @property
    def data_bytes(self):
        return self.count * self.item_bytes


def _max_idx_bytes():
    text = os.environ.get(IDX_MAX_BYTES_VARIABLE, "").strip()
    if not text:
        return IDX_MAX_BYTES
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{IDX_MAX_BYTES_VARIABLE} must be a positive number of bytes, not {text!r}")
    return int(text)


def _open_idx(path):
    """The file's bytes as a stream (decompressed incrementally when it is gzip)."""
    handle = open(path, "rb")
    if handle.read(2) == b"\x1f\x8b":
        handle.seek(0)
        return gzip.GzipFile(fileobj=handle, mode="rb"), True
    handle.seek(0)
    return handle, False


def _read_exactly(stream, size, path, gzipped):
    try:
        data = stream.read(size)
    except (OSError, EOFError, zlib.error) as error:
        if gzipped:
            raise ValueError(f"corrupt gzip file {path}: {error}") from None
        raise ValueError(f"{path} could not be read: {error}") from None
    return data


def read_idx_header(path):
    """The header of an idx file (images: magic 2051, labels: magic 2049), checked against the file."""
    path = pathlib.Path(path)
    try:
        stream, gzipped = _open_idx(path)
    except OSError as error:
        raise ValueError(f"{path} could not be read: {error.strerror or error}") from None
    with stream:
        head = _read_exactly(stream, 16, path, gzipped)
    if len(head) < 8:
        raise ValueError(f"{path} is too short to be an idx file ({len(head)} bytes)")
    magic, count = struct.unpack(">II", head[:8])
    if magic == _IDX_IMAGES:
        if len(head) < 16:
            raise ValueError(f"{path}: truncated idx image header")
        item_shape, offset = struct.unpack(">II", head[8:16]), 16
    elif magic == _IDX_LABELS:
        item_shape, offset = (), 8
    else:
        raise ValueError(f"{path}: bad idx magic number {magic} (expected 2051 for images, 2049 for labels)")
    header = IdxHeader(path, gzipped, magic, count, tuple(item_shape), offset)
    if count == 0 or 0 in item_shape:
        raise ValueError(f"{path}: the header declares {count} items of shape {item_shape}: no data")
    limit = _max_idx_bytes()
    if header.data_bytes > limit:
        raise ValueError(
            f"{path}: the header declares {count} items of shape {item_shape} ({header.data_bytes / 2**20:.1f} MiB "
            f"of data), more than the {limit / 2**20:.0f} MiB this kit reads from one file ({IDX_MAX_BYTES_VARIABLE} "
            "sets that limit)"
        )
    if count > IDX_MAX_ITEMS:
        raise ValueError(f"{path}: the header declares {count} items, more than the {IDX_MAX_ITEMS} this kit reads")
    _check_size(header, path.stat().st_size - offset if not gzipped else _gzip_data_bytes(header))
    return header


def _gzip_data_bytes(header):
    """How many data bytes a gzip idx file decompresses to (at most one more than declared), streamed:
    checked before anything is allocated for it."""
    try:
        stream, _ = _open_idx(header.path)
    except OSError as error:
        raise ValueError(f"{header.path} could not be read: {error.strerror or error}") from None
    with stream:
        _read_exactly(stream, header.offset, header.path, True)
        total, left = 0, header.data_bytes + 1
        while left > 0:
            chunk = _read_exactly(stream, min(_CHUNK_BYTES, left), header.path, True)
            if not chunk:
                break
            total, left = total + len(chunk), left - len(chunk)
    return total


def _check_size(header, actual):
    if actual > header.data_bytes:
        raise ValueError(
            f"{header.path}: the file holds more than the {header.data_bytes} bytes of data its header declares "
            "(corrupt, or not an idx file)"
        )
    if actual != header.data_bytes:
        raise ValueError(
            f"{header.path}: header says {header.count} items ({header.data_bytes} bytes of data) but the file holds "
            f"{actual} bytes (truncated or corrupt)"
        )


def read_idx_rows(header, rows=None):
    """Items `rows` (any order; default all) of an idx file (its header from `read_idx_header`, which
    checked the file's size) as uint8 (len(rows), *item_shape).

    The file is streamed through in chunks, keeping only those rows, so memory is what the rows
    take plus one chunk, whatever the file declares.
    """
    wanted = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if wanted is not None and wanted.size and (wanted.min() < 0 or wanted.max() >= header.count):
        raise ValueError(f"{header.path}: rows outside its {header.count} items")
    unique, inverse = (None, None) if wanted is None else np.unique(wanted, return_inverse=True)
    kept = np.empty((header.count if wanted is None else len(unique), header.item_bytes), dtype=np.uint8)
    per_chunk = max(_CHUNK_BYTES // header.item_bytes, 1)
    try:
        stream, _ = _open_idx(header.path)
    except OSError as error:
        raise ValueError(f"{header.path} could not be read: {error.strerror or error}") from None
    with stream:
        _read_exactly(stream, header.offset, header.path, header.gzipped)
        start = 0
        while start < header.count:
            n = min(per_chunk, header.count - start)
            chunk = _read_exactly(stream, n * header.item_bytes, header.path, header.gzipped)
            if len(chunk) < n * header.item_bytes:  # the file changed since its header was checked
                _check_size(header, start * header.item_bytes + len(chunk))
            block = np.frombuffer(chunk, dtype=np.uint8).reshape(n, header.item_bytes)
            if wanted is None:
                kept[start : start + n] = block
            else:
                lo, hi = np.searchsorted(unique, [start, start + n])
                kept[lo:hi] = block[unique[lo:hi] - start]
            start += n
    if wanted is None or (len(unique) == len(wanted) and np.array_equal(unique, wanted)):  # in order: no copy
        return kept.reshape(len(kept), *header.item_shape)
    return kept[inverse].reshape(len(wanted), *header.item_shape)


def read_idx(path):
    """Read one whole idx file (images: magic 2051, labels: magic 2049) into a uint8 array."""
    return read_idx_rows(read_idx_header(path))


def _find(folder, prefix, kind):
    matches = sorted(folder.glob(f"{prefix}-{kind}-idx*"))
    return matches[0] if matches else None


def _split_headers(folder, prefix):
    """(images header, labels header) of one split's pair of idx files, checked against each other, or None."""
    image_path, label_path = _find(folder, prefix, "images"), _find(folder, prefix, "labels")
    if image_path is None and label_path is None:
        return None
    if image_path is None or label_path is None:
        missing = f"{prefix}-images-idx3-ubyte" if image_path is None else f"{prefix}-labels-idx1-ubyte"
        raise ValueError(f"idx folder {folder} has no {missing}[.gz] to match its other {prefix} file")
    images, labels = read_idx_header(image_path), read_idx_header(label_path)
    if images.magic != _IDX_IMAGES:
        raise ValueError(f"{image_path} does not hold images (magic 2051)")
    if labels.magic != _IDX_LABELS:
        raise ValueError(f"{label_path} does not hold labels (magic 2049)")
    if images.count != labels.count:
        raise ValueError(f"{image_path} has {images.count} images but {label_path} has {labels.count} labels")
    return images, labels


def _read_split(headers, parts):
    """(float32 flattened images in [0, 1], int32 labels) for each array of rows in `parts` (None: all
    rows), reading each file once; each part is converted into its own array."""
    images, labels = headers
    rows = None if parts[0] is None else np.concatenate(parts)
    pixels, classes = read_idx_rows(images, rows), read_idx_rows(labels, rows).astype("int32")
    bounds = np.cumsum([0, *(images.count if part is None else len(part) for part in parts)])
    return [(_flatten(pixels[a:b]), classes[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _load_idx_folder(path, train_size=None, name=None):
    folder = pathlib.Path(path).expanduser()
    if not folder.is_dir():
        raise ValueError(f"idx dataset folder not found: {folder}")
    train, test = _split_headers(folder, "train"), _split_headers(folder, "t10k")
    if train is None and test is None:
        raise ValueError(
            f"no idx files in {folder}: expected train-images-idx3-ubyte[.gz], "
            "train-labels-idx1-ubyte[.gz] and/or t10k-* files"
        )
    name = name or f"idx:{path}"
    image_shape = (train or test)[0].item_shape
    if train is not None and test is not None:
        if train[0].item_shape != test[0].item_shape:
            raise ValueError(
                f"idx folder {folder}: training images are {train[0].item_shape}, test images {test[0].item_shape}"
            )
        kept = _kept(train[0].count, train_size, name)
        [train_part], [test_part] = _read_split(train, [np.arange(kept)]), _read_split(test, [None])
        return train_part, test_part, f"idx files in {folder}", image_shape
    which = "train" if test is None else "t10k"
    headers = train or test
    train_rows, test_rows = _split_rows(headers[0].count)
    train_rows = train_rows[: _kept(len(train_rows), train_size, name)]
    train, test = _read_split(headers, [train_rows, test_rows])
    source = f"idx files in {folder} (only {which}-*: split 5/6 train, 1/6 test, fixed seed)"
    return train, test, source, image_shape

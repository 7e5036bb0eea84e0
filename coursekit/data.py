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
    """Load, normalise, subset and split a dataset by name (see the module docstring).

    Args:
        name: "mnist", "fashion_mnist", "digits", "auto" or "idx:PATH".
        train_size: Keep only the first `train_size` training images. Defaults
            to all of them.
        validation_fraction: Fraction in [0, 1) of the kept training images held
            out, chosen with `seed`, as the validation split. Defaults to 0.
        seed: Seed of the validation split. Defaults to 0.

    Raises:
        ValueError: unknown name, bad sizes, or a missing or corrupt idx file.
        DatasetUnavailable: `mnist`/`fashion_mnist` could not be downloaded.
    """
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be a string; received {name!r}")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1); received validation_fraction={validation_fraction!r}")
    (x_train, y_train), (x_test, y_test), source, image_shape = _load_raw(name)
    if train_size is not None:
        if not isinstance(train_size, (int, np.integer)) or train_size < 1:
            raise ValueError(f"train_size must be a positive integer; received train_size={train_size!r}")
        if train_size > len(x_train):
            raise ValueError(f"train_size={train_size} is larger than the {len(x_train)} training images of {name!r}")
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    n_val = int(round(validation_fraction * len(x_train)))
    if validation_fraction > 0 and (n_val == 0 or n_val == len(x_train)):
        raise ValueError(f"validation_fraction={validation_fraction} of {len(x_train)} images leaves an empty split")
    order = np.random.default_rng(seed).permutation(len(x_train)) if n_val else np.arange(len(x_train))
    val_idx, train_idx = order[:n_val], order[n_val:]
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


def _load_raw(name):
    """((x_train, y_train), (x_test, y_test), source, image_shape), images flattened in [0, 1]."""
    if name.startswith("idx:"):
        return _load_idx_folder(name[len("idx:") :])
    if name == "digits":
        return _load_digits()
    if name in ("mnist", "fashion_mnist"):
        return _load_keras(name)
    if name == "auto":
        if os.environ.get(MNIST_FOLDER_VARIABLE):  # a folder of MNIST idx files: offline, as `idx:PATH`
            try:
                return _load_idx_folder(os.environ[MNIST_FOLDER_VARIABLE])
            except ValueError as error:
                raise ValueError(f"{MNIST_FOLDER_VARIABLE}: {error}") from None
        try:
            return _load_keras("mnist")
        except DatasetUnavailable as error:
            warnings.warn(f"auto dataset: {error}; using the bundled 8x8 digits instead", stacklevel=3)
            train, test, source, shape = _load_digits()
            return train, test, f"{source} (auto: mnist unavailable)", shape
    raise ValueError(f"Unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")


def _flatten(images):
    return images.reshape(len(images), -1).astype("float32") / 255.0


def _load_keras(name):
    import keras

    module = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as error:  # urllib/HTTP/OS errors differ by platform
        raise DatasetUnavailable(
            f"could not load {name} through keras.datasets ({type(error).__name__}: {error}); "
            "without internet use 'digits' or 'idx:PATH'"
        ) from None
    source = f"keras.datasets.{name}"
    return (
        (_flatten(x_train), y_train.astype("int32")),
        (_flatten(x_test), y_test.astype("int32")),
        source,
        x_train.shape[1:],
    )


def _deterministic_split(images, labels):
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(images))
    n_test = int(round(len(images) * _TEST_FRACTION))
    train, test = order[:-n_test], order[-n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.reshape(len(digits.images), -1) / 16.0).astype("float32")
    train, test = _deterministic_split(images, digits.target.astype("int32"))
    return train, test, "scikit-learn load_digits (8x8, bundled)", (8, 8)


# ----------------------------------------------------------------------------
# MNIST-format idx files
# ----------------------------------------------------------------------------

_IDX_IMAGES, _IDX_LABELS = 2051, 2049


def _read_bytes(path):
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise ValueError(f"corrupt gzip file {path}: {error}") from None
    return data


def read_idx(path):
    """Read one idx file (images: magic 2051, labels: magic 2049) into a uint8 array."""
    path = pathlib.Path(path)
    data = _read_bytes(path)
    if len(data) < 8:
        raise ValueError(f"{path} is too short to be an idx file ({len(data)} bytes)")
    magic, count = struct.unpack(">II", data[:8])
    if magic == _IDX_IMAGES:
        if len(data) < 16:
            raise ValueError(f"{path}: truncated idx image header")
        rows, cols = struct.unpack(">II", data[8:16])
        shape, offset = (count, rows, cols), 16
    elif magic == _IDX_LABELS:
        shape, offset = (count,), 8
    else:
        raise ValueError(f"{path}: bad idx magic number {magic} (expected 2051 for images, 2049 for labels)")
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header says {count} items ({expected} bytes of data) but the file holds "
            f"{len(data) - offset} bytes (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find(folder, prefix, kind):
    matches = sorted(folder.glob(f"{prefix}-{kind}-idx*"))
    return matches[0] if matches else None


def _read_split(folder, prefix):
    image_path, label_path = _find(folder, prefix, "images"), _find(folder, prefix, "labels")
    if image_path is None and label_path is None:
        return None
    if image_path is None or label_path is None:
        missing = f"{prefix}-images-idx3-ubyte" if image_path is None else f"{prefix}-labels-idx1-ubyte"
        raise ValueError(f"idx folder {folder} has no {missing}[.gz] to match its other {prefix} file")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3:
        raise ValueError(f"{image_path} does not hold images (magic 2051)")
    if labels.ndim != 1:
        raise ValueError(f"{label_path} does not hold labels (magic 2049)")
    if len(images) != len(labels):
        raise ValueError(f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels")
    return images, labels.astype("int32")


def _load_idx_folder(path):
    folder = pathlib.Path(path).expanduser()
    if not folder.is_dir():
        raise ValueError(f"idx dataset folder not found: {folder}")
    train, test = _read_split(folder, "train"), _read_split(folder, "t10k")
    if train is None and test is None:
        raise ValueError(
            f"no idx files in {folder}: expected train-images-idx3-ubyte[.gz], "
            "train-labels-idx1-ubyte[.gz] and/or t10k-* files"
        )
    image_shape = (train or test)[0].shape[1:]
    if train is not None and test is not None:
        train, test = (_flatten(train[0]), train[1]), (_flatten(test[0]), test[1])
        source = f"idx files in {folder}"
    else:
        which = "train" if test is None else "t10k"
        images, labels = train or test
        train, test = _deterministic_split(_flatten(images), labels)
        source = f"idx files in {folder} (only {which}-*: split 5/6 train, 1/6 test, fixed seed)"
    return train, test, source, image_shape

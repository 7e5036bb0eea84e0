"""Datasets: names, subsets, validation splits, idx parsing and its error messages."""

import gzip
import struct

import numpy as np
import pytest

from coursekit import data
from coursekit.data import load_dataset


def write_idx(folder, prefix, images, labels, compress=True):
    """Write an MNIST-format pair of idx files; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    image_bytes = struct.pack(">IIII", 2051, len(images), *images.shape[1:]) + images.astype(np.uint8).tobytes()
    label_bytes = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    suffix = ".gz" if compress else ""
    paths = []
    for kind, payload in (("images-idx3-ubyte", image_bytes), ("labels-idx1-ubyte", label_bytes)):
        path = folder / f"{prefix}-{kind}{suffix}"
        path.write_bytes(gzip.compress(payload) if compress else payload)
        paths.append(path)
    return paths


@pytest.fixture
def tiny_images(rng):
    return rng.integers(0, 256, size=(60, 4, 4)), rng.integers(0, 10, size=60)


def test_digits_offline_normalised_flat_and_deterministic():
    first, second = load_dataset("digits"), load_dataset("digits", seed=5)
    assert first.x_train.shape[1] == 64 and first.x_train.dtype == np.float32
    assert 0.0 <= first.x_train.min() and first.x_train.max() <= 1.0
    assert len(first.x_train) + len(first.x_test) == 1797
    np.testing.assert_array_equal(first.x_test, second.x_test)  # the test split ignores the seed
    assert first.image_shape == (8, 8) and first.num_classes == 10


def test_train_size_takes_the_first_images_and_validation_is_carved_from_them():
    full = load_dataset("digits")
    subset = load_dataset("digits", train_size=500, validation_fraction=0.2, seed=3)
    assert (len(subset.x_train), len(subset.x_val)) == (400, 100)
    pool = {row.tobytes() for row in full.x_train[:500]}
    assert all(row.tobytes() in pool for row in np.concatenate([subset.x_train, subset.x_val]))
    test_rows = {row.tobytes() for row in subset.x_test}
    assert not any(row.tobytes() in test_rows for row in subset.x_val)
    other_seed = load_dataset("digits", train_size=500, validation_fraction=0.2, seed=4)
    assert not np.array_equal(subset.x_val, other_seed.x_val)
    same_seed = load_dataset("digits", train_size=500, validation_fraction=0.2, seed=3)
    np.testing.assert_array_equal(subset.x_val, same_seed.x_val)


def test_idx_folder_with_both_splits(tmp_path, tiny_images):
    images, labels = tiny_images
    write_idx(tmp_path, "train", images[:50], labels[:50])
    write_idx(tmp_path, "t10k", images[50:], labels[50:], compress=False)
    dataset = load_dataset(f"idx:{tmp_path}")
    np.testing.assert_allclose(dataset.x_train[0], images[0].reshape(-1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(dataset.y_test, labels[50:])
    assert dataset.image_shape == (4, 4)


def test_idx_folder_with_one_split_is_split_deterministically(tmp_path, tiny_images):
    images, labels = tiny_images
    write_idx(tmp_path, "t10k", images, labels)
    dataset = load_dataset(f"idx:{tmp_path}")
    assert (len(dataset.x_train), len(dataset.x_test)) == (50, 10)
    assert "only t10k" in dataset.source
    np.testing.assert_array_equal(dataset.x_test, load_dataset(f"idx:{tmp_path}", seed=9).x_test)


def test_real_mnist_test_set(mnist_dir):
    dataset = load_dataset(f"idx:{mnist_dir}", train_size=1000)
    assert dataset.x_train.shape == (1000, 784)
    assert len(dataset.x_test) == 1667
    assert set(np.unique(dataset.y_train)) == set(range(10))


@pytest.mark.parametrize(
    "corrupt,message",
    [
        (lambda b: b[:-7], "truncated or corrupt"),
        (lambda b: struct.pack(">I", 1234) + b[4:], "bad idx magic number 1234"),
        (lambda b: b[:5], "too short"),
    ],
)
def test_corrupt_idx_files_name_the_file(tmp_path, tiny_images, corrupt, message):
    images, labels = tiny_images
    image_path, _ = write_idx(tmp_path, "t10k", images, labels, compress=False)
    image_path.write_bytes(corrupt(image_path.read_bytes()))
    with pytest.raises(ValueError, match=message) as error:
        load_dataset(f"idx:{tmp_path}")
    assert image_path.name in str(error.value)


def test_images_and_labels_of_different_lengths(tmp_path, tiny_images):
    images, labels = tiny_images
    write_idx(tmp_path, "t10k", images, labels[:40])
    with pytest.raises(ValueError, match="has 60 images but .* has 40 labels"):
        load_dataset(f"idx:{tmp_path}")


def test_corrupt_gzip(tmp_path, tiny_images):
    images, labels = tiny_images
    image_path, _ = write_idx(tmp_path, "t10k", images, labels)
    image_path.write_bytes(image_path.read_bytes()[:30])
    with pytest.raises(ValueError, match="corrupt gzip file .*t10k-images"):
        load_dataset(f"idx:{tmp_path}")


def test_bad_names_and_arguments(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset 'cifar'.*mnist, fashion_mnist, digits, auto, idx:PATH"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="folder not found: .*nowhere"):
        load_dataset(f"idx:{tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="no idx files in"):
        load_dataset(f"idx:{tmp_path}")
    with pytest.raises(ValueError, match="train_size=5000 is larger than the 1497"):
        load_dataset("digits", train_size=5000)
    with pytest.raises(ValueError, match="validation_fraction"):
        load_dataset("digits", validation_fraction=1.5)


def test_auto_falls_back_to_digits_when_mnist_cannot_be_had(monkeypatch):
    def unavailable(name, *args):
        raise data.DatasetUnavailable("no internet (test)")

    monkeypatch.delenv("COURSEKIT_MNIST", raising=False)

    monkeypatch.setattr(data, "_load_keras", unavailable)
    with pytest.warns(UserWarning, match="using the bundled 8x8 digits"):
        dataset = load_dataset("auto")
    assert "auto: mnist unavailable" in dataset.source and dataset.num_features == 64
    with pytest.raises(data.DatasetUnavailable):
        load_dataset("mnist")


def test_auto_reads_the_idx_folder_named_by_coursekit_mnist(monkeypatch, tmp_path, tiny_images):
    def unavailable(name, *args):
        raise AssertionError("auto must not try keras.datasets when COURSEKIT_MNIST is set")

    monkeypatch.setattr(data, "_load_keras", unavailable)
    images, labels = tiny_images
    write_idx(tmp_path, "t10k", images, labels)
    monkeypatch.setenv("COURSEKIT_MNIST", str(tmp_path))
    assert load_dataset("auto").source == load_dataset(f"idx:{tmp_path}").source
    monkeypatch.setenv("COURSEKIT_MNIST", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="COURSEKIT_MNIST: idx dataset folder not found: .*missing"):
        load_dataset("auto")


# -- data files cannot exhaust memory ------------------------------------------------------


def gzip_idx(path, header, data_bytes=0):
    """A gzip idx file: `header` then `data_bytes` zero bytes, compressed as it is written."""
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(header)
        for start in range(0, data_bytes, 2**22):
            handle.write(bytes(min(2**22, data_bytes - start)))
    return path


def test_only_the_images_used_are_converted(tmp_path):
    """60,000 images in one split, train_size=1000: 1,000 training and 10,000 test images are used."""
    import tracemalloc

    gzip_idx(tmp_path / "t10k-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 60_000, 28, 28), 60_000 * 784)
    gzip_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", struct.pack(">II", 2049, 60_000), 60_000)
    tracemalloc.start()
    try:
        dataset = load_dataset(f"idx:{tmp_path}", train_size=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    used = (dataset.x_train.nbytes + dataset.x_test.nbytes) * 1.0
    assert (len(dataset.x_train), len(dataset.x_test)) == (1000, 10_000)
    assert peak < 2 * used, (peak, used)  # the whole file as float32 would be 188 MB, 5.5 times `used`


def test_a_gzip_declaring_more_images_than_it_holds_is_refused_in_one_line(tmp_path):
    path = gzip_idx(tmp_path / "t10k-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 500_000, 28, 28), 784_000)
    gzip_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", struct.pack(">II", 2049, 500_000), 500_000)
    with pytest.raises(ValueError) as error:
        load_dataset(f"idx:{tmp_path}", train_size=10)
    message = str(error.value)
    assert "header says 500000 items (392000000 bytes of data) but the file holds 784000 bytes" in message
    assert path.name in message and "\n" not in message


def test_an_oversized_declaration_is_refused_before_reading(tmp_path, monkeypatch):
    """The issue's 2,000,000 images of zeros (1.5 GB of data in a 1.5 MB gzip): refused from the header."""
    path = gzip_idx(tmp_path / "train-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 2_000_000, 28, 28))
    gzip_idx(tmp_path / "train-labels-idx1-ubyte.gz", struct.pack(">II", 2049, 2_000_000))
    with pytest.raises(
        ValueError, match=r"declares 2000000 items of shape \(28, 28\) \(1495.4 MiB of data\), more than the 1024 MiB"
    ) as error:
        load_dataset(f"idx:{tmp_path}")
    assert "COURSEKIT_IDX_MAX_BYTES" in str(error.value) and "\n" not in str(error.value)
    monkeypatch.setenv("COURSEKIT_IDX_MAX_BYTES", "1000")
    images, labels = np.zeros((2, 28, 28)), np.zeros(2)
    write_idx(tmp_path / "small", "t10k", images, labels)
    with pytest.raises(ValueError, match="more than the 0 MiB this kit reads"):
        load_dataset(f"idx:{tmp_path / 'small'}")
    monkeypatch.setenv("COURSEKIT_IDX_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="COURSEKIT_IDX_MAX_BYTES must be a positive number of bytes"):
        data.read_idx_header(path)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_more_data_than_declared_and_empty_dimensions_are_refused(tmp_path, tiny_images, compress):
    images, labels = tiny_images
    image_path, _ = write_idx(tmp_path, "t10k", images, labels, compress=compress)
    raw = gzip.decompress(image_path.read_bytes()) if compress else image_path.read_bytes()
    extra = raw + b"\0" * 16
    image_path.write_bytes(gzip.compress(extra) if compress else extra)
    with pytest.raises(ValueError, match="holds more than the 960 bytes of data its header declares"):
        load_dataset(f"idx:{tmp_path}")
    empty = struct.pack(">IIII", 2051, 60, 0, 4)
    image_path.write_bytes(gzip.compress(empty) if compress else empty)
    with pytest.raises(ValueError, match=r"declares 60 items of shape \(0, 4\): no data"):
        load_dataset(f"idx:{tmp_path}")


def test_a_single_image_cannot_be_split(tmp_path, tiny_images):
    images, labels = tiny_images
    write_idx(tmp_path, "t10k", images[:1], labels[:1])
    with pytest.raises(ValueError, match=r"1 image\(s\) cannot be split"):
        load_dataset(f"idx:{tmp_path}")

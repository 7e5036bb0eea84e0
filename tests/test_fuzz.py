"""Property-based tests (hypothesis) of what reads untrusted input: the idx reader and dataset
loader, the submission collector (notebooks and zips) and the command lines. Every input either
works or gives a one-line error: never a traceback, a hang, or memory beyond the bound.

CI runs the "ci" profile: derandomized (the same examples every run), a few seconds per property.
`HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py` runs the long campaign (README: what was run).
"""

import contextlib
import gzip
import io
import json
import os
import pathlib
import struct
import tempfile
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from conftest import BACKEND, ROOT
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from coursekit import data
from coursekit.assignments import STUDENT_FILES, blocks, edition
from coursekit.assignments.__main__ import main
from coursekit.assignments.exercises import EXERCISES

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="reading files and command lines does not depend on the backend: TensorFlow leg"
)

settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# The slower property runs fewer examples in CI.
SHORT = {"max_examples": 20} if settings.default.derandomize else {}


def one_line(message):
    return "\n" not in str(message).strip() and str(message).strip()


@contextlib.contextmanager
def scratch():
    with tempfile.TemporaryDirectory(prefix="coursekit-fuzz-") as folder:
        yield pathlib.Path(folder)


# -- idx files ---------------------------------------------------------------------------------


def mostly(usual, rare):
    """`usual` nine times in ten, else `rare`."""
    return st.integers(0, 9).flatmap(lambda k: rare if k == 0 else usual)


counts = mostly(st.integers(0, 40), st.sampled_from([500_000, 2_000_000, 10**7 + 1, 2**31, 2**32 - 1]))
sides = mostly(st.integers(1, 9), st.sampled_from([0, 28, 65535, 2**32 - 1]))


@st.composite
def idx_bytes(draw):
    """(file bytes, decompressed length): a header (mostly well formed) and data of the declared
    length, or shorter, longer or none; raw or gzip, maybe damaged."""
    if draw(st.integers(0, 9)) == 0:
        payload = draw(st.binary(max_size=200))
    else:
        images = draw(st.booleans())
        magic = draw(mostly(st.just(2051 if images else 2049), st.sampled_from([2051, 2049, 2050, 0, 2**32 - 1])))
        count = draw(counts)
        dims = (draw(sides), draw(sides)) if images else ()
        header = struct.pack(">II", magic, count) + (struct.pack(">II", *dims) if images else b"")
        declared = count * int(np.prod(dims, dtype=np.int64))
        length = min(declared, 4096) + draw(mostly(st.just(0), st.sampled_from([-1, 1, -7, 100])))
        payload = header + bytes(draw(st.binary(min_size=8, max_size=8))) * (max(length, 0) // 8 + 1)
        payload = payload[: len(header) + max(length, 0)]
    decompressed = len(payload)
    if draw(st.booleans()):
        payload = gzip.compress(payload, compresslevel=1)
        cut = draw(st.sampled_from([None, None, None, len(payload) // 2, len(payload) - 3, 12]))
        payload = payload[:cut] if cut is not None else payload
        if draw(st.integers(0, 5)) == 0 and len(payload) > 20:
            flip = draw(st.integers(10, len(payload) - 1))
            payload = payload[:flip] + bytes([payload[flip] ^ 0xFF]) + payload[flip + 1 :]
    return payload, decompressed


@given(idx_bytes())
def test_an_idx_file_is_read_as_declared_or_refused_in_one_line(case):
    payload, decompressed = case
    with scratch() as folder:
        path = folder / "t10k-images-idx3-ubyte"
        path.write_bytes(payload)
        tracemalloc.start()
        try:
            array = data.read_idx(path)
        except ValueError as error:
            event(f"refused: {str(error).split(': ', 1)[-1][:28]}")
            assert one_line(error), error
        else:
            event("read")
            header = data.read_idx_header(path)
            assert array.shape == (header.count, *header.item_shape) and array.dtype == np.uint8
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak <= 4 * decompressed + 16 * 2**20, (peak, decompressed)  # whatever the header declares


@given(
    images=st.integers(0, 30),
    labels=mostly(st.none(), st.integers(0, 30)),  # None: as many labels as images
    side=st.integers(1, 4),
    both=st.booleans(),
    train_size=st.one_of(st.none(), st.integers(-2, 40)),
    fraction=st.sampled_from([0.0, 0.2, 0.5, 0.99]),
)
def test_an_idx_folder_loads_or_is_refused_in_one_line(images, labels, side, both, train_size, fraction):
    with scratch() as folder:
        labels = images if labels is None else labels
        rng = np.random.default_rng(images * 100 + labels)
        for prefix in ("train", "t10k") if both else ("t10k",):
            pixels = rng.integers(0, 256, size=(images, side, side), dtype=np.uint8)
            (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
                gzip.compress(struct.pack(">IIII", 2051, images, side, side) + pixels.tobytes())
            )
            (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
                struct.pack(">II", 2049, labels) + rng.integers(0, 10, size=labels, dtype=np.uint8).tobytes()
            )
        try:
            dataset = data.load_dataset(f"idx:{folder}", train_size=train_size, validation_fraction=fraction)
        except ValueError as error:
            event("refused")
            assert one_line(error), error
        else:
            event("loaded")
            assert len(dataset.x_train) + len(dataset.x_val) == (
                train_size or len(dataset.x_train) + len(dataset.x_val)
            )
            assert dataset.x_train.dtype == np.float32 and dataset.x_train.shape[1] == side * side
            assert 0 <= dataset.x_train.min(initial=0) and dataset.x_train.max(initial=0) <= 1


# -- submissions: notebooks and zips -------------------------------------------------------------

REFERENCE_CODE = {}
for _filename in STUDENT_FILES:
    REFERENCE_CODE.update(blocks((ROOT / "coursekit" / _filename).read_text()))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
exercise_sources = st.builds(
    lambda name, code, lines: (
        f"%%exercise {name}\n{code}".splitlines(keepends=True) if lines else f"%%exercise {name}\n{code}"
    ),
    st.sampled_from([*EXERCISES, "nope", ""]),
    st.one_of(st.sampled_from(list(REFERENCE_CODE.values())), st.text(max_size=200)),
    st.booleans(),
)
cells = st.fixed_dictionaries(
    {
        "cell_type": st.sampled_from(["code", "code", "markdown", 3, None]),
        "source": st.one_of(
            exercise_sources, st.text(max_size=50), st.lists(st.one_of(st.text(), st.integers())), json_values
        ),
    }
)
notebooks = st.one_of(
    st.builds(
        lambda c, extra: json.dumps({"cells": c, "metadata": extra, "nbformat": 4}),
        st.lists(cells, max_size=6),
        json_values,
    ),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.integers(1, 60_000).map(lambda depth: "[" * depth + "]" * depth),  # nested deeper than the parser's stack
    st.just(json.dumps({"cells": [{"cell_type": "code", "source": "%%exercise sgd\n" + "x = 1\n" * 200_000}]})),
)


def check_collected(folder):
    before = sorted(p.relative_to(folder.parent) for p in folder.parent.rglob("*"))
    bodies, origin, problems = edition.collect(folder)
    event(f"{len(bodies)} exercises found, {len(problems)} problems")
    for problem in problems:
        event(f"problem: {problem.split(': ')[-1][:30]}")
    assert set(bodies) <= set(EXERCISES) and all(isinstance(code, str) for code in bodies.values())
    assert set(origin) == set(bodies)
    assert all(one_line(problem) for problem in problems), problems
    assert sorted(p.relative_to(folder.parent) for p in folder.parent.rglob("*")) == before  # nothing written
    return bodies, problems


@given(notebooks)
def test_a_submitted_notebook_is_read_or_reported_in_one_line(text):
    with scratch() as root:
        folder = root / "student"
        folder.mkdir()
        (folder / "assignment.ipynb").write_text(text)
        check_collected(folder)


member_names = mostly(
    st.sampled_from([*STUDENT_FILES, "handin/assignment.ipynb", "work/coursekit/layers.py"]),
    st.sampled_from(
        [
            "optimizers.py",
            "handin/layers.py",
            "../optimizers.py",
            "../../etc/regularizers.py",
            "/abs/initializers.py",
            "..\\win\\layers.py",
            "C:/x/optimizers.py",
            "C:\\x\\assignment.ipynb",
            "a/../b/regularizers.py",
            "./assignment.ipynb",
            "assignment.ipynb",
            "nested.zip",
            "dir/",
        ]
    ).flatmap(lambda name: st.one_of(st.just(name), st.text(max_size=20).map(lambda t: f"{t}/{name}"))),
)
member_contents = mostly(
    st.sampled_from([(ROOT / "coursekit" / f).read_bytes() for f in STUDENT_FILES]),
    st.one_of(
        st.binary(max_size=300),
        notebooks.map(str.encode),
        st.integers(1, 2).map(lambda mib: b"\0" * (mib * 2**20)),  # bombs: past the (lowered) limits below
    ),
)


@st.composite
def zips(draw):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for _ in range(draw(st.integers(0, 6))):
            info = zipfile.ZipInfo(draw(member_names))
            kind = draw(mostly(st.just("file"), st.sampled_from(["symlink", "fifo"])))
            mode = {"file": 0o100644, "symlink": 0o120777, "fifo": 0o010644}[kind]
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # duplicate names are part of the test
                archive.writestr(info, draw(member_contents))
    payload = buffer.getvalue()
    damage = draw(mostly(st.none(), st.sampled_from(["truncate", "flip", "garbage"])))
    if damage == "truncate":
        payload = payload[: draw(st.integers(0, max(len(payload) - 1, 0)))]
    elif damage == "flip" and payload:
        at = draw(st.integers(0, len(payload) - 1))
        payload = payload[:at] + bytes([payload[at] ^ 0x55]) + payload[at + 1 :]
    elif damage == "garbage":
        payload = b"PK\x03\x04" + draw(st.binary(max_size=200))
    return payload


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], **SHORT)
@given(zips())
def test_a_submitted_zip_is_read_within_its_limits_or_reported_in_one_line(monkeypatch_zip_limits, payload):
    with scratch() as root:
        folder = root / "student"
        folder.mkdir()
        (folder / "handin.zip").write_bytes(payload)
        tracemalloc.start()
        try:
            check_collected(folder)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak <= 8 * 2**20 + 4 * len(payload), peak  # the lowered limits: 512 KiB a file, 1 MiB in all


@pytest.fixture(scope="module")
def monkeypatch_zip_limits():
    patch = pytest.MonkeyPatch()
    patch.setattr(edition, "MAX_FILE_BYTES", 512 * 2**10)
    patch.setattr(edition, "MAX_ZIP_BYTES", 2**20)
    yield
    patch.undo()


# -- command lines -----------------------------------------------------------------------------

anything = st.text(max_size=12)
option_values = {
    "--memory": st.one_of(st.sampled_from(["2G", "512M", "1.5g", "0", "-1G", "10T", "99999999999T"]), anything),
    "--cpu-seconds": st.one_of(st.integers(-5, 10**6).map(str), anything),
    "--file-size": st.one_of(st.sampled_from(["64M", "1k", "0b"]), anything),
    "--open-files": st.one_of(st.integers(-5, 5000).map(str), anything),
    "--processes": st.one_of(st.integers(-5, 5000).map(str), anything),
    "--check-seconds": st.one_of(st.sampled_from(["1", "0.5", "nan", "inf", "-3", "1e9"]), anything),
    "--hidden-seed": st.one_of(st.integers(-5, 2**40).map(str), anything),
    "--jobs": st.one_of(st.integers(-2, 64).map(str), anything),
    "--exercise": st.one_of(st.sampled_from([*EXERCISES, "momentun"]), anything),
    "--out": st.sampled_from(["gradebook.csv", "g.txt", "", "x/y/z.csv"]),
    "--user": st.sampled_from(["", "no-such-user-here", "root\x00"]),
    "--gradescope": st.sampled_from(["results.json"]),
    "--all-or-nothing": st.none(),
    "--public-only": st.none(),
    "--bogus": st.none(),
}


@st.composite
def command_lines(draw):
    command = draw(mostly(st.sampled_from(["grade", "grade-all", "autograde"]), st.sampled_from(["bogus", ""])))
    argv = [command, draw(st.sampled_from(["nowhere", "no/such/folder", "-", "\x00"]))] if command else []
    if command == "grade-all":
        argv += ["--out", draw(mostly(st.just("gradebook.csv"), option_values["--out"]))]
    if command == "autograde":
        argv += ["--gradescope", "results.json"]
    for _ in range(draw(st.integers(0, 5))):
        option = draw(st.sampled_from(sorted(option_values)))
        value = draw(option_values[option])
        argv += [option] if value is None else [option, value]
    return argv


@given(command_lines())
def test_the_command_line_works_or_says_what_is_wrong_in_one_line(argv):
    """No input reaches a grading child: every folder named does not exist (or is not a submission)."""
    stderr = io.StringIO()
    with scratch() as cwd, contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        previous = os.getcwd()
        os.chdir(cwd)
        try:
            status = main(argv)
        except SystemExit as stop:
            status = stop.code
        finally:
            os.chdir(previous)
    event(stderr.getvalue().split(": error: ")[-1][:30])
    assert status == 2, (argv, status, stderr.getvalue())
    assert one_line(stderr.getvalue()), (argv, stderr.getvalue())


@given(st.text(max_size=30))
def test_a_dataset_name_loads_or_is_refused_in_one_line(name):
    if name in ("mnist", "fashion_mnist", "auto"):  # those may download
        return
    try:
        data.load_dataset(name, train_size=5)
    except ValueError as error:
        assert one_line(error), error

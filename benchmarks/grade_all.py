"""grade-all on a class of submissions: wall seconds and peak memory.

    python benchmarks/grade_all.py [--students 30] [--jobs 1 2] [--check-seconds 20] [--out DIR]

Builds the class itself in DIR/submissions: correct submissions (as the four component files,
as a filled-in assignment notebook, or zips of either), partly wrong ones (a classic mistake
planted in one exercise) and hostile ones (3 GiB allocated, a fork loop, an endless loop, a
1 GiB file written: each in an exercise's code, the only code of a submission that is graded). Then runs `python -m coursekit.assignments grade-all` on it once per
`--jobs` value (alternating when `--repeat` > 1), each into a fresh gradebook, with the default
limits, and prints per run the wall seconds, the peak memory of the whole process tree (the
grader and every child, proportional set size summed, sampled every 0.2 s), the largest single
process, and the machine's load average before and after (the machine may be shared). It checks
that the gradebook holds every student, the correct ones with full marks and the hostile ones
with 0 on what they broke.
"""

import argparse
import csv
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

import nbformat
import psutil

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coursekit.assignments import STUDENT_FILES, blocks  # noqa: E402

# (file, reference text, planted text, exercise): classic mistakes, one per partly wrong student
MISTAKES = [
    (
        "optimizers.py",
        "ops.add(ops.sqrt(accumulator), self.epsilon)",
        "ops.sqrt(ops.add(accumulator, self.epsilon))",
        "adagrad",
    ),
    (
        "optimizers.py",
        "lr_t = ops.divide(ops.multiply(lr, ops.sqrt(1 - beta_2_power)), 1 - beta_1_power)",
        "lr_t = lr",
        "adam",
    ),
    ("initializers.py", "return 1.0 / math.sqrt(fan_in(shape))", "return 1.0 / math.sqrt(shape[-1])", "xavier"),
    ("initializers.py", "return math.sqrt(2.0 / fan_in(shape))", "return math.sqrt(1.0 / fan_in(shape))", "he"),
    (
        "regularizers.py",
        "return 0.5 * self.lam * ops.sum(ops.square(weights))",
        "return self.lam * ops.sum(ops.square(weights))",
        "weight_decay",
    ),
]
# (file, reference text, hostile text, exercise, what it breaks)
HOSTILE = [
    (
        "regularizers.py",
        "return 0.5 * self.lam * ops.sum(ops.square(weights))",
        "_hog = bytearray(3 * 2**30)\n        return 0.5 * self.lam * ops.sum(ops.square(weights))",
        "weight_decay",
        "memory",
    ),
    (
        "optimizers.py",
        "self.assign_add(variable, velocity)",
        "import os\n        while True:\n            os.fork()\n        self.assign_add(variable, velocity)",
        "momentum",
        "processes",
    ),
    (
        "optimizers.py",
        "self.assign_sub(variable, ops.multiply(gradient, lr))",
        "while True:\n            pass",
        "sgd",
        "time",
    ),
    (
        "initializers.py",
        "return math.sqrt(2.0 / fan_in(shape))",
        "open('big.bin', 'wb').write(bytes(2**30))\n        return math.sqrt(2.0 / fan_in(shape))",
        "he",
        "file size",
    ),
]


def reference_texts():
    return {name: (ROOT / "coursekit" / name).read_text() for name in STUDENT_FILES}


def planted(texts, change):
    filename, old, new = change[:3]
    assert texts[filename].count(old) == 1, (filename, old)
    return {**texts, filename: texts[filename].replace(old, new)}


def notebook(texts):
    """The assignment notebook's %%exercise cells filled with the code between the markers of `texts`."""
    cells = [nbformat.v4.new_markdown_cell("# assignment")]
    for text in texts.values():
        cells += [nbformat.v4.new_code_cell(f"%%exercise {name}\n{code}") for name, code in blocks(text).items()]
    return nbformat.writes(nbformat.v4.new_notebook(cells=cells))


def write_submission(folder, texts, form):
    """One student's folder: the files, the notebook, or a zip of either."""
    folder.mkdir(parents=True)
    files = {"assignment.ipynb": notebook(texts)} if form in ("notebook", "zipped notebook") else texts
    if form.startswith("zipped"):
        with zipfile.ZipFile(folder / "submission.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in files.items():
                archive.writestr(f"handin/{name}", text)
    else:
        for name, text in files.items():
            (folder / name).write_text(text)


def build_class(root, students):
    """{student: (kind, exercise or None)} for `students` submissions: 60% correct, 25% partly wrong, the
    rest hostile (at least one of each hostile kind when there are enough students)."""
    reference, expected = reference_texts(), {}
    hostile = min(len(HOSTILE), max(students - int(students * 0.85), 0))
    wrong = int(students * 0.25)
    forms = ["files", "notebook", "zipped files", "zipped notebook"]
    for index in range(students):
        name = f"student{index:02d}"
        form = forms[index % len(forms)]
        if index < hostile:
            change = HOSTILE[index]
            write_submission(root / name, planted(reference, change), "files")
            expected[name] = ("hostile", change[3], change[4])
        elif index < hostile + wrong:
            change = MISTAKES[index % len(MISTAKES)]
            write_submission(root / name, planted(reference, change), form)
            expected[name] = ("partly wrong", change[3], None)
        else:
            write_submission(root / name, reference, form)
            expected[name] = ("correct", None, None)
    return expected


def tree_pss(process):
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_full_info().pss
        except psutil.Error:
            continue
    return total


def run_grade_all(submissions, out, jobs, check_seconds):
    command = [sys.executable, "-m", "coursekit.assignments", "grade-all", str(submissions), "--out", str(out)]
    command += ["--jobs", str(jobs), "--check-seconds", str(check_seconds), "--hidden-seed", "0"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    load_before = os.getloadavg()
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, stop = [0], threading.Event()

    def sample():
        process = psutil.Process(child.pid)
        while not stop.wait(0.2):
            try:
                peak[0] = max(peak[0], tree_pss(process))
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = child.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    if child.returncode != 0:
        sys.exit(f"grade-all failed (status {child.returncode}):\n{output[-3000:]}")
    return {
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "peak_tree_memory_gib": round(peak[0] / 2**30, 2),
        "largest_process_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "output_tail": output.strip().splitlines()[-3:],
    }


def check_gradebook(path, expected):
    with open(path, newline="") as handle:
        book = {row["student"]: row for row in csv.DictReader(handle)}
    assert sorted(book) == sorted(expected), "students missing from the gradebook"
    for student, (kind, exercise, _) in expected.items():
        row = book[student]
        if kind == "correct":
            assert row["total"] == row["max_total"], (student, row)
        elif kind == "partly wrong":
            assert float(row[exercise]) < 10, (student, row)
        else:
            assert row[exercise] == "0" and exercise in row["problems"], (student, row)
    return book


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--check-seconds", type=float, default=20)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="grade-all-bench-"))
    shutil.rmtree(out / "submissions", ignore_errors=True)
    expected = build_class(out / "submissions", args.students)
    kinds = [kind for kind, _, _ in expected.values()]
    print(
        f"{args.students} submissions in {out / 'submissions'}: {kinds.count('correct')} correct, "
        f"{kinds.count('partly wrong')} partly wrong, {kinds.count('hostile')} hostile "
        f"({', '.join(h[4] for h in HOSTILE[: kinds.count('hostile')])}); {os.cpu_count()} cores"
    )
    runs = []
    for repeat in range(args.repeat):
        for jobs in args.jobs:
            gradebook = out / f"run{repeat}-jobs{jobs}" / "gradebook.csv"
            shutil.rmtree(gradebook.parent, ignore_errors=True)
            result = run_grade_all(out / "submissions", gradebook, jobs, args.check_seconds)
            check_gradebook(gradebook, expected)
            runs.append(result)
            print(
                f"jobs {jobs}: {result['seconds']:.1f} s ({result['seconds'] / args.students:.1f} s per student), "
                f"peak memory of the process tree {result['peak_tree_memory_gib']:.2f} GiB, largest process "
                f"{result['largest_process_gib']:.2f} GiB; load average {result['load_before']} -> {result['load_after']}"
            )
    best = {jobs: min(r["seconds"] for r in runs if r["jobs"] == jobs) for jobs in args.jobs}
    print("fastest per --jobs:", ", ".join(f"{jobs}: {seconds:.1f} s" for jobs, seconds in best.items()))
    (out / "benchmark.json").write_text(json.dumps({"students": args.students, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()

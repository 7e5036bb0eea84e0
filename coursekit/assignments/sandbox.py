"""Limits on the grader's child processes: memory, CPU seconds, file size, open files, processes.

Every child that the grader starts (the harness that runs a student's code, and the pre-check
that the user named by `--user` can run this Python) is started as a `Child(argv, limits, ...)`:

- **memory**: a memory cgroup (cgroup v1, `memory.limit_in_bytes`) where this process may make
  one: the kernel ends the child at the limit. Elsewhere a watchdog thread sums the anonymous
  memory of the child and its descendants (Linux's Pss_Anon: a page shared by forks counts once)
  every 0.1 s and kills them all beyond the limit (an allocation faster than that can overshoot by what it allocates in 0.1 s). A bare
  `RLIMIT_AS` is not used: TensorFlow and JAX reserve far more address space than they use.
- **tasks** (processes and threads: TensorFlow and JAX start a thread pool per core): a pids
  cgroup (`pids.max`) where one can be made, else the watchdog counts the descendants' threads
  and kills them all beyond the limit. (`RLIMIT_NPROC` is not enforced for root, and it counts
  every process of a user, so one student's fork loop would starve the others' children.)
- **CPU seconds** (`RLIMIT_CPU`, per process), **file size** (`RLIMIT_FSIZE`), **open files**
  (`RLIMIT_NOFILE`) and no core files (`RLIMIT_CORE` 0): set in the child by this module's
  launcher (`python -m coursekit.assignments.sandbox`) before the harness runs.
- **network**: none, where `unshare --net` works (as root, or in a user namespace).
- a **scratch working folder** (also HOME and TMPDIR), and an **environment** built from an
  allow-list (`child_environment`): no token, no credential, nothing of the grader's.

What a limit cannot hold: a child that runs as root (no `--user`) can raise its own rlimits and
leave its cgroup; the limits then stop accidents, not code written to undo them. Run the
student's code as an unprivileged user (`--user`, as Gradescope's autograder does).

The limits are settings (`Limits`, `Limits.from_env()`: COURSEKIT_LIMIT_MEMORY, ..._CPU_SECONDS,
..._FILE_SIZE, ..._OPEN_FILES, ..._TASKS, and COURSEKIT_LIMIT_CGROUPS=0 for the watchdog only).
"""

import dataclasses
import errno
import functools
import itertools
import json
import os
import pathlib
import re
import resource
import runpy
import shutil
import signal
import subprocess
import sys
import threading
import time

KiB, MiB, GiB = 2**10, 2**20, 2**30
WATCH_SECONDS = 0.1
CGROUP_PREFIX = "coursekit-grader"
# Environment variables a child may see: what Python, Keras and the backends need, nothing else.
ALLOWED_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES")
ALLOWED_PREFIXES = ("TF_CPP_", "XLA_", "JAX_")
_SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|CREDENTIAL|KEY", re.IGNORECASE)


def format_size(size):
    """2147483648 -> "2 GiB"; 1536 * 2**20 -> "1.5 GiB"."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size} bytes"


def parse_size(text):
    """ "2G", "2GiB", "512M", "64k", "1048576" -> bytes; ValueError (one line) for anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"expected a size such as 2G, 512M or 1048576, not {text!r}")
    value = float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " ")
    if value < 1 or value > 2**62:
        raise ValueError(f"a size must be at least 1 byte and at most 4 EiB, not {text!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one grader child may use. Defaults fit one component file's checks with room to spare
    (measured: at most 0.6 GiB of anonymous memory, 26 threads, 10 open files, 13 CPU seconds)."""

    memory: int = 2 * GiB  # bytes, resident (anonymous) memory of the child and its descendants
    cpu_seconds: int = 600  # per process
    file_size: int = 64 * MiB  # bytes, the largest file the child may write
    open_files: int = 256
    tasks: int = 512  # processes and threads together
    cgroups: bool = True  # use cgroups where this process may make them (False: the watchdog only)

    VARIABLES = {
        "memory": ("COURSEKIT_LIMIT_MEMORY", parse_size),
        "cpu_seconds": ("COURSEKIT_LIMIT_CPU_SECONDS", int),
        "file_size": ("COURSEKIT_LIMIT_FILE_SIZE", parse_size),
        "open_files": ("COURSEKIT_LIMIT_OPEN_FILES", int),
        "tasks": ("COURSEKIT_LIMIT_TASKS", int),
    }

    def __post_init__(self):
        for name in self.VARIABLES:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"limit {name} must be a positive integer, not {value!r}")
        if self.open_files < 16:
            raise ValueError(f"limit open_files={self.open_files} is too small for Python to start (at least 16)")

    @classmethod
    def from_env(cls, environ=None, **overrides):
        """The defaults, replaced by the COURSEKIT_LIMIT_* variables that are set, then by `overrides`
        (those that are not None)."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, (variable, parse) in cls.VARIABLES.items():
            if environ.get(variable, "").strip():
                try:
                    values[name] = parse(environ[variable])
                except ValueError as error:
                    raise ValueError(f"{variable}: {error}") from None
        if environ.get("COURSEKIT_LIMIT_CGROUPS", "").strip():
            values["cgroups"] = environ["COURSEKIT_LIMIT_CGROUPS"].strip().lower() not in ("0", "no", "false", "off")
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)

    def message(self, name):
        """How a submission that broke limit `name` is told so."""
        return {
            "memory": f"used more than {format_size(self.memory)} of memory",
            "cpu_seconds": f"used more than {self.cpu_seconds} CPU seconds",
            "file_size": f"wrote a file larger than {format_size(self.file_size)}",
            "open_files": f"opened more than {self.open_files} files at once",
            "tasks": f"started more than {self.tasks} processes and threads",
        }[name]

    def describe(self):
        return (
            f"memory {format_size(self.memory)}, {self.cpu_seconds} CPU seconds, files up to "
            f"{format_size(self.file_size)}, {self.open_files} open files, {self.tasks} processes and threads"
        )

    def rlimits(self):
        """{resource name: (soft, hard)} that the launcher sets in the child."""
        return {
            "RLIMIT_CPU": (
                self.cpu_seconds,
                self.cpu_seconds + 5,
            ),  # SIGXCPU at the soft limit, SIGKILL at the hard one
            "RLIMIT_FSIZE": (self.file_size, self.file_size),
            "RLIMIT_NOFILE": (self.open_files, self.open_files),
            "RLIMIT_CORE": (0, 0),
        }


def limit_named_in(text):
    """The limit a child's error message shows was hit (from its errno), or None."""
    text = text or ""
    if f"[Errno {errno.EFBIG}]" in text:
        return "file_size"
    if f"[Errno {errno.EMFILE}]" in text:
        return "open_files"
    if re.search(r"\bMemoryError\b", text):
        return "memory"
    return None


def child_environment(workdir, pythonpath):
    """The child's whole environment: the allow-listed variables, HOME and TMPDIR in its scratch folder."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if (key in ALLOWED_VARIABLES or key.startswith(ALLOWED_PREFIXES)) and not _SECRET.search(key)
    }
    return {
        "PATH": os.defpath,
        **kept,
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


# ----------------------------------------------------------------------------------------
# Network: unshare
# ----------------------------------------------------------------------------------------


@functools.cache
def network_prefix(identity=None):
    """(argv prefix that starts a command with no network, as `identity` (uid, gid) if given, or None; why)."""
    if shutil.which("unshare") is None:
        return None, "no unshare command on this machine: the child keeps the network"
    if os.geteuid() == 0:
        as_user = ["--setgid", str(identity[1]), "--setuid", str(identity[0])] if identity else []
        candidates = [["unshare", "--net", *as_user]]
    else:
        candidates = [["unshare", "--net", "--map-current-user"], ["unshare", "--net", "--map-root-user"]]
    for prefix in candidates:
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return prefix, "no network (unshare --net)"
    return None, "unshare --net is not allowed here: the child keeps the network"


# ----------------------------------------------------------------------------------------
# cgroups (v1: the memory and pids controllers)
# ----------------------------------------------------------------------------------------


def _v1_base(controller):
    """The folder of this process's cgroup in the v1 hierarchy of `controller`, or None."""
    try:
        mounts = pathlib.Path("/proc/self/mounts").read_text().splitlines()
        own = pathlib.Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    mount = next(
        (f.split()[1] for f in mounts if f.split()[2:3] == ["cgroup"] and controller in f.split()[3].split(",")),
        None,
    )
    path = next((line.split(":", 2)[2] for line in own if controller in line.split(":", 2)[1].split(",")), None)
    if mount is None or path is None:
        return None
    base = pathlib.Path(mount) / path.lstrip("/")
    return base if base.is_dir() else None


_counter = itertools.count()


class Cgroups:
    """The memory and pids cgroups of one child (each where it can be made); `.memory`/`.pids` None otherwise."""

    def __init__(self, limits):
        self.memory = self.pids = None
        if not limits.cgroups:
            return
        name = f"{CGROUP_PREFIX}-{os.getpid()}-{next(_counter)}"
        self.memory = self._make("memory", name, {"memory.limit_in_bytes": limits.memory})
        if self.memory is not None:
            for setting in ("memory.memsw.limit_in_bytes", "memory.swappiness"):  # no swap: not everywhere
                try:
                    (self.memory / setting).write_text(str(limits.memory if "memsw" in setting else 0))
                except OSError:
                    pass
        self.pids = self._make("pids", name, {"pids.max": limits.tasks})

    @staticmethod
    def _make(controller, name, settings):
        base = _v1_base(controller)
        if base is None:
            return None
        _remove_stale(base)
        folder = base / name
        try:
            folder.mkdir()
        except OSError:
            return None
        try:
            for setting, value in settings.items():
                (folder / setting).write_text(str(value))
        except OSError:
            _remove(folder)
            return None
        return folder

    def attach(self, pid):
        """Put process `pid` in the cgroups; the ones that refuse it are dropped (the watchdog takes over)."""
        for kind in ("memory", "pids"):
            folder = getattr(self, kind)
            if folder is not None:
                try:
                    (folder / "cgroup.procs").write_text(str(pid))
                except OSError:
                    _remove(folder)
                    setattr(self, kind, None)

    def pids_in(self):
        """Every process in the child's cgroup (also those that left its process group)."""
        for folder in (self.pids, self.memory):
            if folder is not None:
                try:
                    return [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    continue
        return None

    def broken(self):
        """The limit the kernel enforced on the child ("memory", "tasks") or None."""
        if self.memory is not None and _counter_value(self.memory / "memory.oom_control", "oom_kill"):
            return "memory"
        if self.pids is not None and _counter_value(self.pids / "pids.events", "max"):
            return "tasks"
        return None

    def remove(self):
        for folder in (self.memory, self.pids):
            if folder is not None:
                _remove(folder)


def _counter_value(path, key):
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _remove(folder):
    """Kill what is left in a cgroup folder, then remove it."""
    for _ in range(50):
        try:
            pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _remove_stale(base):
    """Remove the cgroups of graders that are gone (killed before they could clean up)."""
    for folder in base.glob(f"{CGROUP_PREFIX}-*-*"):
        try:
            owner = int(folder.name.split("-")[-2])
        except ValueError:
            continue
        if owner != os.getpid() and not _alive(owner):
            _remove(folder)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mechanisms(limits, identity=None):
    """How the limits are held on this machine, for the report: a JSON-safe dict."""
    probe = Cgroups(limits)
    held = {kind: "cgroup" if getattr(probe, kind) is not None else "watchdog" for kind in ("memory", "pids")}
    probe.remove()
    uid = identity[0] if identity else os.geteuid()
    return {
        "limits": limits.describe(),
        "memory": f"{held['memory']} ({format_size(limits.memory)})",
        "tasks": f"{held['pids']} ({limits.tasks})",
        "network": network_prefix(identity)[1],
        "uid": uid,
        "note": "the student's code runs as root: the limits stop accidents, not code written to undo them"
        if uid == 0
        else None,
    }


# ----------------------------------------------------------------------------------------
# The child
# ----------------------------------------------------------------------------------------


class Child:
    """A child process under `limits`: `.process` (a Popen), `.broken()` (the limit it broke, or None),
    `.kill()`; use as a context manager so that it, its descendants and its cgroups are gone after."""

    def __init__(self, argv, limits, *, workdir, identity=None, pythonpath, **popen):
        self.limits, self.cgroups = limits, Cgroups(limits)
        prefix, self.network = network_prefix(identity)
        launcher = [sys.executable, "-m", "coursekit.assignments.sandbox", json.dumps(limits.rlimits())]
        as_user = {} if not identity or prefix else {"user": identity[0], "group": identity[1], "extra_groups": []}
        self._killed_for = None
        self._peak = {"memory": 0, "tasks": 0, "cpu_seconds": 0.0}
        self._stop = threading.Event()
        try:
            self.process = subprocess.Popen(
                [*(prefix or []), *launcher, *argv],
                cwd=workdir,
                env=child_environment(workdir, pythonpath),
                start_new_session=True,
                **as_user,
                **popen,
            )
        except BaseException:
            self.cgroups.remove()
            raise
        self.cgroups.attach(self.process.pid)
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        self._stop.set()
        self._watchdog.join(timeout=5)
        self._final = self.broken()  # before the cgroups (and their counters) are gone
        self.cgroups.remove()

    def _processes(self):
        import psutil

        pids = self.cgroups.pids_in()
        if pids is not None:
            return [p for p in map(_process, pids) if p is not None]
        root = _process(self.process.pid)
        if root is None:
            return []
        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return [root]

    def _watch(self):
        import psutil

        while not self._stop.wait(WATCH_SECONDS) and self.process.poll() is None:
            memory = tasks = cpu = 0
            for process in self._processes():
                try:
                    with process.oneshot():
                        times = process.cpu_times()
                        memory += _anonymous_memory(process)
                        tasks += process.num_threads()
                        cpu = max(cpu, times.user + times.system)  # RLIMIT_CPU holds per process
                except psutil.Error:
                    continue
            self._peak = {
                "memory": max(self._peak["memory"], memory),
                "tasks": max(self._peak["tasks"], tasks),
                "cpu_seconds": max(self._peak["cpu_seconds"], cpu),
            }
            if self.cgroups.memory is None and memory > self.limits.memory:
                self.kill("memory")
            elif self.cgroups.pids is None and tasks > self.limits.tasks:
                self.kill("tasks")

    def kill(self, reason=None):
        """End the child and every process of its cgroup or process group; `reason`: the limit it broke."""
        if reason and self._killed_for is None:
            self._killed_for = reason
        for process in self._processes() if self.process.poll() is None else []:
            try:
                process.kill()
            except Exception:  # psutil.Error: gone already
                pass
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
        self.process.wait()

    def broken(self):
        """The limit the child broke ("memory", "tasks", "cpu_seconds", "file_size"), or None."""
        if hasattr(self, "_final"):
            return self._final
        if self._killed_for:
            return self._killed_for
        by_kernel = self.cgroups.broken()
        if by_kernel:
            return by_kernel
        status = self.process.poll()
        if status == -signal.SIGXCPU or (
            status == -signal.SIGKILL and self._peak["cpu_seconds"] >= self.limits.cpu_seconds - 1
        ):  # SIGKILL: at the hard limit, when the code caught SIGXCPU
            return "cpu_seconds"
        if status == -signal.SIGXFSZ:
            return "file_size"
        return None

    def peak(self):
        """The largest memory (bytes), tasks and CPU seconds of one process the watchdog saw (every 0.1 s)."""
        return dict(self._peak)


def _anonymous_memory(process):
    """The process's share of anonymous memory (Linux: Pss_Anon, so that pages a fork shares count once),
    else its resident memory less the pages of mapped files."""
    try:
        with open(f"/proc/{process.pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1]) * KiB
    except (OSError, ValueError, IndexError):
        pass
    info = process.memory_info()
    return info.rss - getattr(info, "shared", 0)


def _process(pid):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def run(argv, limits, *, workdir, identity=None, pythonpath, timeout):
    """Run `argv` (a Python module and its arguments) to the end under `limits`; (returncode, output, broken)."""
    with Child(
        argv,
        limits,
        workdir=workdir,
        identity=identity,
        pythonpath=pythonpath,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as child:
        try:
            output, _ = child.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            return None, "", "timed out"
        return child.process.returncode, output.decode(errors="replace"), child.broken()


# ----------------------------------------------------------------------------------------
# The launcher (in the child): python -m coursekit.assignments.sandbox RLIMITS MODULE ARGS...
# ----------------------------------------------------------------------------------------


def _launch(argv):
    """Set the rlimits, then run Python module argv[1] with the arguments after it, as `python -m` would."""
    for name, (soft, hard) in json.loads(argv[0]).items():
        which = getattr(resource, name)
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))
    module = argv[1]
    sys.argv = [module, *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _launch(sys.argv[1:])

"""Run a native or untrusted parser in a child process with limits (M8).

The parent resolves the model's path, opens it and starts `python -I -m
deepscope.sources._sandbox` with that descriptor, sends one JSON request on stdin and reads
one JSON answer on stdout. The child runs with `RLIMIT_AS` (memory), `RLIMIT_CPU`, no core
dumps, a file-size limit, a private TMPDIR/HOME as working folder (removed afterwards), no
HDF5 plugins, and a wall-clock timeout. Tasks in `CONFINED` (the HDF5 readers) first warm
up, then give up the right to open any file (Landlock, `confine_files`), so a file that
points elsewhere (M10) cannot be read even if a check were missed. A crash (SIGSEGV, abort,
OOM, timeout) becomes `WorkerDiedError`, never a dead server, and the child is always reaped.

Example:
    >>> run_task("h5_weights", Path("model.weights.h5"))   # doctest: +SKIP
    {'weights': [...]}
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from deepscope.errors import ModelFormatError, UnsafeModelError
from deepscope.sources import _limits

# task name -> "module:function(path: str, options: dict) -> JSON-safe value"
TASKS: dict[str, str] = {
    "h5_weights": "deepscope.sources._keras_h5:worker_h5_weights",
    "h5_legacy": "deepscope.sources._keras_h5:worker_h5_legacy",
    "h5_values": "deepscope.sources._keras_h5:worker_h5_values",
    "torchscript_graph": "deepscope.sources.torchscript_file:worker_trusted_graph",
    "pickle_tensors": "deepscope.sources.state_dict:worker_trusted_tensors",
    "onnx_shapes": "deepscope.sources._onnx_functions:worker_onnx_shapes",
}
# tasks that never open a file by name: after importing these modules the child is
# forbidden (Landlock, where the kernel has it) to open any file at all (M10)
# tasks that never open a file by name -> the function that imports what they use; after
# it runs the child is forbidden (Landlock, where the kernel has it) to open any file (M10)
CONFINED: dict[str, str] = {
    "h5_weights": "deepscope.sources._keras_h5:warm_up",
    "h5_legacy": "deepscope.sources._keras_h5:warm_up",
    "h5_values": "deepscope.sources._keras_h5:warm_up",
    "onnx_shapes": "deepscope.sources._onnx_functions:warm_up",
}
_ERRORS: dict[str, type[ModelFormatError]] = {
    "UnsafeModelError": UnsafeModelError,
    "ModelFormatError": ModelFormatError,
}
_MAX_ANSWER = 64 * _limits.MB
_FSIZE = 256 * _limits.MB  # loaders (torch.export) unpack into TMPDIR, a private folder


class WorkerDiedError(ModelFormatError):
    """The parser worker crashed, ran out of memory or time; the model could not be parsed."""


def _limit_child(memory: int, cpu_s: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FSIZE, _FSIZE))
    os.setsid()


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def run_task(
    task: str,
    path: Path,
    options: dict[str, Any] | None = None,
    *,
    timeout: float = _limits.SANDBOX_TIMEOUT_S,
    memory: int = _limits.SANDBOX_MEMORY,
    fault: str | None = None,
) -> Any:
    """Run `task` on `path` in a limited child; return its JSON answer.

    The parent opens `path` (resolved here: the child runs in its own working folder) and
    hands the child the open descriptor as `options["fd"]`; the child also gets the absolute
    path for tasks that need a name. `fault="abort"` makes the child call `os.abort()` first
    (for tests of M8). Raises `WorkerDiedError` on a crash or timeout, or the typed error
    the task raised.
    """
    if task not in TASKS:
        raise ValueError(f"unknown sandbox task {task!r}")
    path = Path(path).resolve()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ModelFormatError(f"cannot open {path}: {e.strerror}") from None
    try:
        request = json.dumps(
            {
                "task": task,
                "path": str(path),
                "options": {**(options or {}), "fd": fd, "name": path.name},
                "fault": fault,
            }
        )
        with tempfile.TemporaryDirectory(prefix="deepscope-worker-") as tmp:
            return _run(request, tmp, timeout, memory, fd)
    finally:
        os.close(fd)


def _run(request: str, tmp: str, timeout: float, memory: int, fd: int) -> Any:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "OMP_NUM_THREADS": "1",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": tmp,
        "HOME": tmp,
        # libhdf5: never load filter plugins; external-file prefixes point at the empty
        # private folder (the readers also refuse external storage and links outright)
        "HDF5_PLUGIN_PRELOAD": "::",
        "HDF5_EXT_PREFIX": tmp,
        "HDF5_VDS_PREFIX": tmp,
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-m", "deepscope.sources._sandbox"],
            input=request.encode(),
            capture_output=True,
            timeout=timeout,
            env=env,
            cwd=tmp,
            pass_fds=(fd,),
            preexec_fn=lambda: _limit_child(memory, max(1, int(timeout))),  # noqa: PLW1509
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise WorkerDiedError(
            f"model could not be parsed (worker died: timeout after {timeout:g} s)"
        ) from None
    if proc.returncode != 0 and not proc.stdout:
        raise WorkerDiedError(
            f"model could not be parsed (worker died: {_describe(proc.returncode)})"
        )
    try:
        answer = json.loads(proc.stdout[:_MAX_ANSWER].decode("utf-8"))
    except ValueError:
        raise WorkerDiedError(
            f"model could not be parsed (worker gave no answer: {_describe(proc.returncode)})"
        ) from None
    if "error" in answer:
        err = answer["error"]
        raise _ERRORS.get(err.get("type"), ModelFormatError)(str(err.get("message")))
    return answer["result"]


_LANDLOCK_CREATE, _LANDLOCK_RESTRICT = 444, 446  # syscall numbers, the same on every arch
_PR_SET_NO_NEW_PRIVS = 38
# Landlock filesystem rights by ABI version: 13 in v1, REFER in v2, TRUNCATE in v3,
# IOCTL_DEV in v5
_FS_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}


def confine_files() -> bool:
    """Forbid this process, from now on, to open, create or run any file (Landlock).

    Descriptors already open keep working. Returns False (and changes nothing) where the
    kernel has no Landlock; the readers' own checks still refuse external data then.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        abi = int(libc.syscall(_LANDLOCK_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
    except (OSError, AttributeError):
        return False
    if abi < 1:
        return False
    rights = _FS_RIGHTS.get(abi, (1 << 16) - 1)
    attr = ctypes.c_uint64(rights)  # struct landlock_ruleset_attr, handled_access_fs only
    ruleset = int(
        libc.syscall(_LANDLOCK_CREATE, ctypes.byref(attr), ctypes.c_size_t(8), ctypes.c_uint32(0))
    )
    if ruleset < 0:
        return False
    try:
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        return int(libc.syscall(_LANDLOCK_RESTRICT, ruleset, ctypes.c_uint32(0))) == 0
    finally:
        os.close(ruleset)


def _child_main() -> int:
    request = json.loads(sys.stdin.buffer.read(1 << 20))
    if request.get("fault") == "abort":
        os.abort()
    module_name, func_name = TASKS[request["task"]].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        if request["task"] in CONFINED:
            warm_module, warm_name = CONFINED[request["task"]].split(":")
            getattr(importlib.import_module(warm_module), warm_name)()
            confine_files()
        out: dict[str, Any] = {"result": func(request["path"], request["options"])}
    except UnsafeModelError as e:
        out = {"error": {"type": "UnsafeModelError", "message": str(e)}}
    except MemoryError:
        out = {
            "error": {
                "type": "ModelFormatError",
                "message": "model could not be parsed (worker out of memory)",
            }
        }
    except Exception as e:  # any parser failure becomes a typed error in the parent
        out = {
            "error": {
                "type": "ModelFormatError",
                "message": f"model could not be parsed: {type(e).__name__}: {e}"[:2000],
            }
        }
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())

"""The compiled FC engine: the loop over layers of the one-matrix block in C++ (docs/design.md).

The per-layer engine of :mod:`resnet_scaling.training.resnet` issues about a dozen small tensor
operations per layer and training step, and at the widths of the paper (d = 10, 25) their
dispatch costs several times their arithmetic. Here one call runs a whole training step of
every network (forward pass keeping h_k and σ(z_k), loss, the adjoint of docs/maths.md §5 with
∂ℓ/∂A_k, ∂ℓ/∂b_k and ∂ℓ/∂δ_k taken while a layer's rows are in cache) in hand-written loops
(``csrc/``).

The extension is built on first use with ``torch.utils.cpp_extension`` into torch's extension
cache (``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``), in a folder named by
a hash of its sources and flags, so a changed source never loads a stale library. It is
compiled for the default instruction set and for AVX2 + FMA, and picks one from the CPU it
runs on: a library built on one node of a cluster runs on any other. Where it cannot be
built or loaded (no compiler, no ninja), :func:`library` says why in one line on the console and
returns None, and the per-layer engine trains instead.

The library's size and sha256 are recorded beside it at build time (``library.json``) and
checked before it is loaded: a damaged library (truncated by a full disk or a killed copy,
emptied) is relinked rather than loaded (a truncated one would die with SIGBUS, an empty one
fall back for good), and the console says so once per process.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import torch

from ..io import DISK_FULL, write_json
from .checkpoint import console

log = logging.getLogger(__name__)

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = (CSRC / "fc_engine.cpp", CSRC / "fc_kernels.h")
#: No -march=native: the library may be loaded on another CPU than the one that built it;
#: the AVX2 kernels are selected at run time instead (csrc/fc_engine.cpp).
CFLAGS = ("-O3", "-ffp-contract=fast", "-Wno-psabi")
ACTIVATION_CODES = {"tanh": 0, "relu": 1}
ENGINES = ("auto", "compiled", "per-layer")
#: The record of the built library, beside it: its file name, size and sha256.
RECORD = "library.json"

_state: dict = {}  # "lib": the loaded library or None, "reason": why not


def _one_line(exc: BaseException) -> str:
    """The line of a build failure that says why: the compiler's or loader's first error, not
    the ninja commands around it; a full disk says so whichever tool met it."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return f"no space left on the device ({exc})"[:300]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    full = [line for line in lines if "no space left on device" in line.lower() or "disk quota exceeded" in line.lower()]
    if full:
        return f"no space left on the device ({full[0]})"[:300]
    noise = ("error building extension", "[", "failed:", "ninja: build stopped")
    useful = [line for line in lines if not line.lower().startswith(noise) and " -c " not in line]
    for line in useful:
        if "error" in line.lower():
            return line[:300]
    return (useful or lines or [type(exc).__name__])[0][:300]


def build_directory() -> Path:
    """Where the library is built and cached: a folder of torch's extension cache per version
    and location of the sources (two checkouts never rebuild each other's library)."""
    from torch.utils.cpp_extension import get_default_build_root

    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(str(path.resolve()).encode())
        digest.update(path.read_bytes())
    digest.update(repr((CFLAGS, torch.__version__)).encode())
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    return Path(root) / f"resnet_scaling_fc_{digest.hexdigest()[:16]}"


def _measure(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"file": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def _damage(folder: Path) -> tuple[Path, str] | None:
    """The library in ``folder`` and why it must not be loaded (None when it is whole or not built yet)."""
    try:
        recorded = json.loads((folder / RECORD).read_text())
        library_file = folder / Path(str(recorded["file"])).name
    except (OSError, ValueError, KeyError, TypeError):
        library_file = folder / f"{folder.name}.so"
        return (library_file, "no record of its size and digest") if library_file.exists() else None
    if not library_file.exists():
        return None
    found = _measure(library_file)
    if found["size"] != recorded.get("size"):
        return library_file, f"{found['size']} bytes where {recorded.get('size')} were built"
    if found["sha256"] != recorded.get("sha256"):
        return library_file, "its sha256 differs from the one recorded at build time"
    return None


def _record(folder: Path, library_file: Path) -> None:
    """Write the library's size and digest beside it (atomically), unless already recorded."""
    found = _measure(library_file)
    try:
        if json.loads((folder / RECORD).read_text()) == found:
            return
    except (OSError, ValueError):
        pass
    write_json(folder / RECORD, found)


def _build() -> ctypes.CDLL:
    import fcntl

    from torch.utils.cpp_extension import load

    folder = build_directory()
    folder.mkdir(parents=True, exist_ok=True)
    # One process builds at a time; a lock held with flock dies with its process, so a job
    # killed during the build leaves nothing that blocks the next one (torch's own lock file
    # would: it is removed here, under our lock).
    # torch's own notes on the compiler (several lines each) are left out: a failure is one line.
    torch_log = logging.getLogger("torch.utils.cpp_extension")
    level = torch_log.level
    with open(folder / "build.lock", "w") as lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fcntl.flock(lock, fcntl.LOCK_EX)
        (folder / "lock").unlink(missing_ok=True)
        torch_log.setLevel(logging.ERROR)
        try:
            damage = _damage(folder)
            if damage is not None:
                damage[0].unlink(missing_ok=True)  # ninja relinks a missing library
                _state["damage"] = damage
            path = load(folder.name, [str(SOURCES[0])], extra_cflags=list(CFLAGS), build_directory=str(folder),
                        is_python_module=False, verbose=False)
            _record(folder, Path(path))
            lib = ctypes.CDLL(path)  # under the lock: no other process relinks it meanwhile
        finally:
            torch_log.setLevel(level)
    for precision, pointer in (("f32", ctypes.c_void_p), ("f64", ctypes.c_void_p)):
        train = getattr(lib, f"rs_fc_train_{precision}")
        train.argtypes = [ctypes.c_int] * 5 + [pointer] * 9
        train.restype = ctypes.c_int
        forward = getattr(lib, f"rs_fc_forward_{precision}")
        forward.argtypes = [ctypes.c_int] * 5 + [pointer] * 5
        forward.restype = ctypes.c_int
    lib.rs_fc_instruction_set.restype = ctypes.c_int
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled engine, built (or, when damaged, rebuilt) on the first call of the process;
    None when it cannot be built or loaded. Either event is one line on the console, once."""
    if "lib" not in _state:
        try:
            _state["lib"], _state["reason"] = _build(), None
        except Exception as exc:  # any failure of the toolchain means: train with the per-layer engine
            _state["lib"], _state["reason"] = None, _one_line(exc)
        if _state.get("damage") and _state["lib"] is not None:
            where, problem = _state["damage"]
            console(f"compiled FC engine: {where} failed its check ({problem}); it was rebuilt and loads")
        elif _state.get("damage"):
            where, problem = _state["damage"]
            console(f"compiled FC engine: {where} failed its check ({problem}) and could not be rebuilt "
                    f"({_state['reason']}); training continues with the slower per-layer engine")
        elif _state["lib"] is None:
            console(f"compiled FC engine unavailable ({_state['reason']}); training continues with the "
                    "slower per-layer engine")
    return _state["lib"]


def instruction_set() -> str | None:
    """``avx2`` or ``base``: the kernels the library runs on this CPU (None without a library)."""
    lib = library()
    return None if lib is None else ("avx2" if lib.rs_fc_instruction_set() else "base")


def build_info() -> dict:
    """What the compiled engine runs on, for the training outputs' metadata: the kernels'
    instruction set and the first line of the C++ compiler's ``--version`` (``$CXX`` or ``c++``,
    as torch's extension builder uses)."""
    import os
    import subprocess

    if "compiler" not in _state:
        compiler = os.environ.get("CXX", "c++")
        try:
            out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
            _state["compiler"] = out.splitlines()[0].strip() if out else compiler
        except (OSError, subprocess.SubprocessError):
            _state["compiler"] = f"{compiler} (no version)"
    return {"instruction_set": instruction_set(), "compiler": _state["compiler"]}


def unavailable_reason() -> str | None:
    """Why the compiled engine could not be built or loaded in this process (None if it loads)."""
    library()
    return _state.get("reason")


def unsupported(params: dict[str, torch.Tensor], activation: str) -> str | None:
    """Why the compiled engine does not apply to these parameters, or None when it does."""
    A = params["A"]
    if "V" in params:
        return "the two-matrix block"
    if activation not in ACTIVATION_CODES:
        return f"activation {activation!r}"
    if A.device.type != "cpu":
        return f"device {A.device}"
    if A.dtype not in (torch.float32, torch.float64):
        return f"dtype {A.dtype}"
    return None


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _suffix(t: torch.Tensor) -> str:
    return "f32" if t.dtype == torch.float32 else "f64"


def _check(tensors: dict[str, torch.Tensor], like: torch.Tensor) -> None:
    for name, t in tensors.items():
        if t.dtype != like.dtype or t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError(f"compiled engine: {name} must be a contiguous CPU tensor of dtype {like.dtype}")


def loss_and_grad(lib: ctypes.CDLL, A: torch.Tensor, b: torch.Tensor, delta: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor, activation: str, grad_A: torch.Tensor, grad_b: torch.Tensor,
                  grad_delta: torch.Tensor | None) -> torch.Tensor:
    """Per-network MSE loss (S,) of one step; ∂ℓ/∂A, ∂ℓ/∂b and (unless None) ∂ℓ/∂δ_k written in place.

    A (L, S, d, d), b (L, S, d), δ (L, S), x and y (S, N, d), all contiguous, of one dtype.
    """
    L, S, d, _ = A.shape
    N = x.shape[1]
    _check({"A": A, "b": b, "delta": delta, "x": x, "y": y, "grad_A": grad_A, "grad_b": grad_b}, A)
    if grad_delta is not None:
        _check({"grad_delta": grad_delta}, A)
    if b.shape != (L, S, d) or delta.shape != (L, S) or x.shape != (S, N, d) or y.shape != x.shape:
        raise ValueError(f"compiled engine: shapes {tuple(b.shape)}, {tuple(delta.shape)}, {tuple(x.shape)}, "
                         f"{tuple(y.shape)} do not fit A {tuple(A.shape)}")
    if grad_A.shape != A.shape or grad_b.shape != b.shape or (grad_delta is not None and grad_delta.shape != delta.shape):
        raise ValueError("compiled engine: gradient buffers must have their parameters' shapes")
    loss = torch.empty(S, dtype=A.dtype)
    code = getattr(lib, f"rs_fc_train_{_suffix(A)}")(
        L, S, d, N, ACTIVATION_CODES[activation], A.data_ptr(), b.data_ptr(), delta.data_ptr(), x.data_ptr(),
        y.data_ptr(), loss.data_ptr(), grad_A.data_ptr(), grad_b.data_ptr(), _ptr(grad_delta))
    if code:
        raise MemoryError(f"compiled engine: no memory for the work rows of L = {L}, N = {N}, d = {d}")
    return loss


def forward(lib: ctypes.CDLL, A: torch.Tensor, b: torch.Tensor, delta: torch.Tensor, x: torch.Tensor,
            activation: str) -> torch.Tensor:
    """Outputs h_L (S, N, d) of every network for inputs x (S, N, d)."""
    L, S, d, _ = A.shape
    N = x.shape[1]
    _check({"A": A, "b": b, "delta": delta, "x": x}, A)
    if b.shape != (L, S, d) or delta.shape != (L, S) or x.shape != (S, N, d):
        raise ValueError(f"compiled engine: shapes {tuple(b.shape)}, {tuple(delta.shape)}, {tuple(x.shape)} "
                         f"do not fit A {tuple(A.shape)}")
    out = torch.empty_like(x)
    code = getattr(lib, f"rs_fc_forward_{_suffix(A)}")(
        L, S, d, N, ACTIVATION_CODES[activation], A.data_ptr(), b.data_ptr(), delta.data_ptr(), x.data_ptr(),
        out.data_ptr())
    if code:
        raise MemoryError(f"compiled engine: no memory for the work rows of d = {d}")
    return out

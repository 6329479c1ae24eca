"""The loops over layers and steps of the analysis in C++ (``csrc/path_loops.cpp``), float64.

- the RK4 loops of the ODE limit systems and their adjoints (:func:`..fbsde.ode.ode_backprop`),
  on as many steps as the network has layers (9,100 at the paper's deepest), a few networks of
  width 25 and 16 inputs at a time: in Python each step issues about twenty tensor operations
  whose dispatch costs several times their arithmetic;
- the networks' forward pass, keeping every state or the outputs alone (:mod:`..limits.network`;
  the losses and outputs of :mod:`..scaling.decomposition` and :mod:`..scaling.outputs`), and
  their explicit adjoint (:func:`..fbsde.backprop.network_backprop`, the pathwise signatures).

One call runs every step of every network. The arithmetic is the Python loops', step for step
(same stages, same coefficient indices); the two agree to rounding (tests/test_sde_compiled.py).

Built on first use like the training engine (:mod:`..training.compiled`): torch's extension
builder, a folder of torch's extension cache named by a hash of the sources and flags, a record
of the library's size and sha256 checked before it is loaded, AVX2 + FMA kernels chosen at run
time. Where it cannot be built or loaded, :func:`library` says why in one line and returns
None, and the Python loops (torch operations, the training engine) run instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import warnings
from pathlib import Path

import torch

from ..training.checkpoint import console
from ..training.compiled import _damage, _one_line, _record

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = (CSRC / "path_loops.cpp", CSRC / "path_kernels.h")
CFLAGS = ("-O3", "-ffp-contract=fast", "-Wno-psabi", "-std=c++17")
#: The activations the loops evaluate (the linear ODE needs none).
ACTIVATION_CODES = {"tanh": 0, "relu": 1}
LINEAR = 2

_state: dict = {}


def build_directory() -> Path:
    """A folder of torch's extension cache per version, sources and their location."""
    from torch.utils.cpp_extension import get_default_build_root

    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(str(path.resolve()).encode())
        digest.update(path.read_bytes())
    digest.update(repr((CFLAGS, torch.__version__)).encode())
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    return Path(root) / f"resnet_scaling_paths_{digest.hexdigest()[:16]}"


def _build() -> ctypes.CDLL:
    import fcntl

    from torch.utils.cpp_extension import load

    folder = build_directory()
    folder.mkdir(parents=True, exist_ok=True)
    torch_log = logging.getLogger("torch.utils.cpp_extension")
    level = torch_log.level
    # one process builds at a time (a flock dies with its process); see training.compiled
    with open(folder / "build.lock", "w") as lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fcntl.flock(lock, fcntl.LOCK_EX)
        (folder / "lock").unlink(missing_ok=True)
        torch_log.setLevel(logging.ERROR)
        try:
            damage = _damage(folder)
            if damage is not None:
                damage[0].unlink(missing_ok=True)
                _state["damage"] = damage
            path = load(folder.name, [str(SOURCES[0])], extra_cflags=list(CFLAGS), build_directory=str(folder),
                        is_python_module=False, verbose=False)
            _record(folder, Path(path))
            lib = ctypes.CDLL(path)
        finally:
            torch_log.setLevel(level)
    pointer = ctypes.c_void_p
    lib.rs_rk4_forward.argtypes = [ctypes.c_int] * 5 + [ctypes.c_double] + [pointer] * 3 + [ctypes.c_int] + [pointer] * 3
    lib.rs_rk4_forward.restype = ctypes.c_int
    lib.rs_rk4_adjoint.argtypes = [ctypes.c_int] * 4 + [ctypes.c_double] + [pointer] * 4
    lib.rs_rk4_adjoint.restype = ctypes.c_int
    lib.rs_net_forward.argtypes = [ctypes.c_int] * 5 + [pointer] * 5
    lib.rs_net_forward.restype = ctypes.c_int
    lib.rs_net_adjoint.argtypes = [ctypes.c_int] * 5 + [pointer] * 8
    lib.rs_net_adjoint.restype = ctypes.c_int
    lib.rs_net_output.argtypes = [ctypes.c_int] * 5 + [pointer] * 5
    lib.rs_net_output.restype = ctypes.c_int
    lib.rs_rk4_instruction_set.restype = ctypes.c_int
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled loops, built (or, when damaged, rebuilt) on the first call of the process;
    None when they cannot be built or loaded. Either event is one line on the console, once."""
    if "lib" not in _state:
        try:
            _state["lib"], _state["reason"] = _build(), None
        except Exception as exc:  # any failure of the toolchain means: the Python loops run
            _state["lib"], _state["reason"] = None, _one_line(exc)
        if _state.get("damage"):
            where, problem = _state["damage"]
            outcome = ("it was rebuilt and loads" if _state["lib"] is not None else
                       f"it could not be rebuilt ({_state['reason']}); the slower Python loops run instead")
            console(f"compiled path loops: {where} failed its check ({problem}); {outcome}")
        elif _state["lib"] is None:
            console(f"compiled path loops unavailable ({_state['reason']}); the slower Python loops run instead")
    return _state["lib"]


def unavailable_reason() -> str | None:
    """Why the compiled loops could not be built or loaded in this process (None if they load)."""
    library()
    return _state.get("reason")


#: How the callers run their loops: ``compiled`` (an error where the compiled loops do not apply),
#: ``python`` (torch operations) or ``auto`` (compiled where they apply).
ENGINES = ("auto", "compiled", "python")


def select(engine: str, activation: str | None):
    """The loaded library when ``engine`` asks for the compiled loops and they apply to
    ``activation`` (None: a linear field, which any build applies to), else None."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    if engine == "python":
        return None
    reason = None if activation is None or activation in ACTIVATION_CODES else f"activation {activation!r}"
    lib = library() if reason is None else None
    if lib is None and engine == "compiled":
        raise RuntimeError(f"compiled loops do not apply: {reason or unavailable_reason()}")
    return lib


def _contiguous(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.to(torch.float64).contiguous()


def _address(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def forward(lib: ctypes.CDLL, A: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, *, activation: str | None,
            scale: torch.Tensor | None = None, slope: float = 1.0, per_step: bool = False,
            dts: torch.Tensor | None = None) -> torch.Tensor:
    """States H (n+1, P, N, d) of ``dH/dt = scale_t σ(A_t H + b_t)`` (``activation`` tanh or relu)
    or ``dH/dt = scale_t · slope (A_t H + b_t)`` (``activation`` None) from h0 (P, N, d) by n RK4
    steps. Coefficients at the half-grid times, A (2n+1, P, d, d), b (2n+1, P, d), scale (2n+1, P)
    (None: 1), or with ``per_step`` constant on each step, (n, P, …). Steps of 1/n, or ``dts`` (n,)."""
    A, b, s, h0, dts = _contiguous(A), _contiguous(b), _contiguous(scale), _contiguous(h0), _contiguous(dts)
    T, P, d = A.shape[0], A.shape[1], A.shape[-1]
    N = h0.shape[1]
    n = T if per_step else (T - 1) // 2
    if (b.shape != (T, P, d) or h0.shape != (P, N, d) or (s is not None and s.shape != (T, P))
            or (not per_step and T % 2 == 0) or (dts is not None and dts.shape != (n,))):
        raise ValueError(f"compiled loops: shapes {tuple(b.shape)}, {tuple(h0.shape)} do not fit A {tuple(A.shape)}")
    H = torch.empty((n + 1, P, N, d), dtype=torch.float64)
    code = LINEAR if activation is None else ACTIVATION_CODES[activation]
    if lib.rs_rk4_forward(n, P, N, d, code, float(slope), A.data_ptr(), b.data_ptr(), _address(s), int(per_step),
                          _address(dts), h0.data_ptr(), H.data_ptr()):
        raise MemoryError(f"compiled loops: no memory for the work rows of N = {N}, d = {d}")
    return H


def adjoint(lib: ctypes.CDLL, A_half: torch.Tensor, p1: torch.Tensor, *, weight: torch.Tensor | None = None,
            slope: float = 1.0) -> torch.Tensor:
    """Adjoints P (n+1, P, N, d) of ``dP/dt = −J_tᵀ P``, ``P_1 = p1`` (P, N, d), backward on the n RK4
    steps of the half grid, with ``J_tᵀ P = (weight_t ⊙ P) A_t`` row by row (weight (2n+1, P, N, d))
    or ``slope · P A_t`` (weight None)."""
    A, w, p1 = _contiguous(A_half), _contiguous(weight), _contiguous(p1)
    T, P, d = A.shape[0], A.shape[1], A.shape[-1]
    N = p1.shape[1]
    if p1.shape != (P, N, d) or (w is not None and w.shape != (T, P, N, d)) or T % 2 == 0:
        raise ValueError(f"compiled loops: shapes {tuple(p1.shape)} do not fit A {tuple(A.shape)}")
    n = (T - 1) // 2
    Pt = torch.empty((n + 1, P, N, d), dtype=torch.float64)
    if lib.rs_rk4_adjoint(n, P, N, d, float(slope), A.data_ptr(), _address(w), p1.data_ptr(), Pt.data_ptr()):
        raise MemoryError(f"compiled loops: no memory for the work rows of N = {N}, d = {d}")
    return Pt


def _network_arrays(A, b, delta) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    A, b, delta = _contiguous(torch.as_tensor(A)), _contiguous(torch.as_tensor(b)), _contiguous(torch.as_tensor(delta))
    P, L, d = A.shape[0], A.shape[1], A.shape[-1]
    if b.shape != (P, L, d) or delta.shape != (P, L):
        raise ValueError(f"compiled network: shapes {tuple(b.shape)}, {tuple(delta.shape)} do not fit A {tuple(A.shape)}")
    return A, b, delta


def network_forward(lib: ctypes.CDLL, A, b, delta, x: torch.Tensor, activation: str) -> torch.Tensor:
    """Every state H (L+1, P, N, d) of the networks ``h_{k+1} = h_k + δ_k σ(A_k h_k + b_k)``, weights
    path-major A (P, L, d, d), b (P, L, d), δ (P, L) (as on disk), inputs x (P, N, d)."""
    A, b, delta = _network_arrays(A, b, delta)
    x = _contiguous(x)
    P, L, d = A.shape[0], A.shape[1], A.shape[-1]
    if x.shape[0] != P or x.shape[-1] != d:
        raise ValueError(f"compiled network: inputs {tuple(x.shape)} do not fit A {tuple(A.shape)}")
    H = torch.empty((L + 1, *x.shape), dtype=torch.float64)
    if lib.rs_net_forward(L, P, x.shape[1], d, ACTIVATION_CODES[activation], A.data_ptr(), b.data_ptr(),
                          delta.data_ptr(), x.data_ptr(), H.data_ptr()):
        raise MemoryError(f"compiled network: no memory for the work rows of d = {d}")
    return H


def network_output(lib: ctypes.CDLL, A, b, delta, x: torch.Tensor, activation: str) -> torch.Tensor:
    """The outputs h_L (P, N, d) of :func:`network_forward`'s networks, holding one state per
    network whatever the depth."""
    A, b, delta = _network_arrays(A, b, delta)
    x = _contiguous(x)
    P, L, d = A.shape[0], A.shape[1], A.shape[-1]
    if x.shape[0] != P or x.shape[-1] != d:
        raise ValueError(f"compiled network: inputs {tuple(x.shape)} do not fit A {tuple(A.shape)}")
    out = torch.empty_like(x)
    if lib.rs_net_output(L, P, x.shape[1], d, ACTIVATION_CODES[activation], A.data_ptr(), b.data_ptr(),
                         delta.data_ptr(), x.data_ptr(), out.data_ptr()):
        raise MemoryError(f"compiled network: no memory for the work rows of N = {x.shape[1]}, d = {d}")
    return out


def network_adjoint(lib: ctypes.CDLL, A, b, delta, H: torch.Tensor, p_last: torch.Tensor, activation: str, *,
                    gradients: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The networks' explicit adjoint (docs/maths.md §5) from ``p_L = p_last`` (P, N, d) and their
    states H: adjoints (L+1, P, N, d) and, with ``gradients``, ∂ℓ/∂A_k / δ_k (L, P, d, d) and
    ∂ℓ/∂b_k / δ_k (L, P, d), the sums over inputs of ``u_k h_kᵀ`` and ``u_k``, ``u_k = σ'(z_k) ⊙ p_{k+1}``."""
    A, b, delta = _network_arrays(A, b, delta)
    H, p_last = _contiguous(H), _contiguous(p_last)
    P, L, d = A.shape[0], A.shape[1], A.shape[-1]
    N = p_last.shape[1]
    if p_last.shape != (P, N, d) or H.shape != (L + 1, P, N, d):
        raise ValueError(f"compiled network: shapes {tuple(H.shape)}, {tuple(p_last.shape)} do not fit A {tuple(A.shape)}")
    Pt = torch.empty_like(H)
    gM = torch.empty((L, P, d, d), dtype=torch.float64) if gradients else None
    gm = torch.empty((L, P, d), dtype=torch.float64) if gradients else None
    if lib.rs_net_adjoint(L, P, N, d, ACTIVATION_CODES[activation], A.data_ptr(), b.data_ptr(), delta.data_ptr(),
                          H.data_ptr(), p_last.data_ptr(), Pt.data_ptr(), _address(gM), _address(gm)):
        raise MemoryError(f"compiled network: no memory for the work rows of d = {d}")
    return Pt, gM, gm

"""A batched ensemble of residual networks with an explicit discrete adjoint (docs/maths.md §1, §5).

``S`` independent networks of the same depth ``L`` and width ``d`` are one object: every
weight tensor carries a seed dimension, so a layer of all networks is one batched matmul.

Storage convention: tensors are stored *layer-major* — ``A`` is ``(L, S, d, d)``, ``b`` is
``(L, S, d)`` — so that ``A[k]`` is contiguous in the per-layer loop. ``A[k, s]`` is in the
paper's column-vector convention (``z = A h + b``); hidden states are rows, so the code
computes ``z = h Aᵀ + b``. :meth:`ResNetEnsemble.to_numpy` returns seed-major arrays
``(S, L, ...)``, the convention of every file on disk.

Two residual blocks (docs/maths.md §1): the one-matrix block ``h + δ σ(A h + b)`` and the
two-matrix block ``h + δ V σ(W h + b)`` with a hidden width ``m``; the latter stores ``W``
as ``A`` (L, S, m, d), ``b`` as (L, S, m) and ``V`` (L, S, d, m).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..config import V_INITS
from ..io import stable_seed
from . import compiled
from .activations import Activation, get_activation

log = logging.getLogger(__name__)

DELTA_TYPES = ("none", "shared", "multi", "fixed")
INITS = ("xavier", "xavier-depth", "iid-sqrt-depth", "gaussian")
#: How the initial weights vary along depth (docs/maths.md §1): independent layers, a smooth
#: function of k/L, a Brownian path, or one draw for every layer (tied); each keeps the
#: marginal law of ``init`` (Brownian: at k = L).
INIT_DEPTH_PROFILES = ("iid", "smooth", "brownian", "tied")
BLOCKS = ("one-matrix", "two-matrix")


def along_depth(G: torch.Tensor, profile: str) -> torch.Tensor:
    """Standard normal draws G (L, ...) arranged along depth (docs/maths.md §1).

    ``iid``: G itself. ``smooth``: cos(πk/L) G_0 + sin(πk/L) G_1, a Lipschitz path in t = k/L
    with the marginal law of one G_k. ``brownian``: Σ_{j≤k} G_j / √L, a Brownian path at
    times (k+1)/L. ``tied``: G_0 at every layer (weight tying, a constant path). All use the
    same draws, so the rest of a generator's stream is the same whichever profile is chosen.
    """
    if profile not in INIT_DEPTH_PROFILES:
        raise ValueError(f"unknown init depth profile {profile!r}; expected one of {INIT_DEPTH_PROFILES}")
    L = G.shape[0]
    if profile == "iid":
        return G
    if profile == "tied":
        return G[:1].expand_as(G).clone()
    if profile == "brownian":
        return torch.cumsum(G, dim=0) / L**0.5
    t = torch.arange(L, dtype=G.dtype) * (torch.pi / L)
    shape = (L, *([1] * (G.dim() - 1)))
    return torch.cos(t).view(shape) * G[0] + torch.sin(t).view(shape) * G[min(1, L - 1)]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when the process sees a GPU (e.g. inside a Slurm GPU job), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Trajectory:
    """Hidden states ``h`` (L+1, S, N, d), pre-activations ``z`` (L, S, N, d) and σ(z) of a forward pass."""

    h: torch.Tensor
    z: torch.Tensor
    sz: torch.Tensor | None = None


class ResNetEnsemble:
    """``S`` ResNets ``h_{k+1} = h_k + δ_k σ(A_k h_k + b_k)`` trained side by side.

    Trainable parameters live in :attr:`params` (every tensor has the seed on dim 1):
    ``A`` (L,S,d,d), ``b`` (L,S,d), and for ``shared`` δ the scalar ``c`` as (1,S),
    for ``multi`` δ the per-layer ``delta`` (L,S). With ``V`` (L,S,d,m) in the parameters
    the block is ``h + δ V σ(A h + b)`` with A (L,S,m,d) and b (L,S,m).
    """

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        delta_type: str,
        activation: str | Activation,
        alpha: float = 1.0,
    ):
        if delta_type not in DELTA_TYPES:
            raise ValueError(f"unknown delta type {delta_type!r}; expected one of {DELTA_TYPES}")
        self.params = params
        self.delta_type = delta_type
        self.activation = get_activation(activation) if isinstance(activation, str) else activation
        self.alpha = alpha
        self._workspace: dict[str, torch.Tensor] = {}  # per-step work tensors, see _buffer
        self._views: dict[str, tuple] = {}  # per-layer views of work tensors and parameters, see _layers
        self.engine = "per-layer"  # of loss_and_grad and the evaluation pass, see select_engine
        self._compiled = None

    def select_engine(self, engine: str) -> str:
        """Choose the engine of :meth:`loss_and_grad` and of the evaluation pass; returns the one in use.

        ``auto``: the compiled loop over layers (:mod:`.compiled`) where it applies — the
        one-matrix block, tanh or ReLU, on the CPU — and builds, else the per-layer engine.
        ``compiled``: the compiled loop or an error saying why it cannot run (no fallback).
        ``per-layer``: this module's batched per-layer operations. The explicit adjoint
        (:meth:`trajectory`, :meth:`adjoint`) and the differentiable pass are per-layer either way.
        """
        if engine not in compiled.ENGINES:
            raise ValueError(f"unknown engine {engine!r}; expected one of {compiled.ENGINES}")
        self._compiled = None
        if engine == "compiled":
            reason = compiled.unsupported(self.params, self.activation.name)
            if reason is None and compiled.library() is None:
                reason = f"it is unavailable here: {compiled.unavailable_reason()}"
            if reason is not None:
                raise RuntimeError(f"engine: compiled was asked for, but the compiled engine cannot run ({reason}); "
                                   "set engine: auto to train with the per-layer engine instead")
            self._compiled = compiled.library()
        if engine == "auto":
            reason = compiled.unsupported(self.params, self.activation.name)
            if reason is None:
                self._compiled = compiled.library()
            else:
                log.info("per-layer engine: the compiled engine does not cover %s", reason)
        self.engine = "per-layer" if self._compiled is None else "compiled"
        return self.engine

    # -- shape -----------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self.params["A"].shape[0]

    @property
    def n_seeds(self) -> int:
        return self.params["A"].shape[1]

    @property
    def dim(self) -> int:
        return self.params["A"].shape[3]

    @property
    def two_matrix(self) -> bool:
        return "V" in self.params

    # -- construction --------------------------------------------------------
    @classmethod
    def initialise(
        cls,
        depth: int,
        dim: int,
        seeds: list[int] | range,
        delta_type: str = "shared",
        init: str = "xavier-depth",
        init_sd: float = 1.0,
        bias_sd: float | None = None,
        activation: str = "tanh",
        alpha: float = 1.0,
        key: str = "",
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        depth_profile: str = "iid",
        block: str = "one-matrix",
        hidden_width: int | None = None,
        v_init: str = "law",
        bias: bool = True,
        delta_init_sd: float | None = None,
    ) -> "ResNetEnsemble":
        """Draw the initial weights of each seed from its own generator (docs/maths.md §1).

        The generator of seed ``s`` is seeded from ``(key, depth, s)`` only, so a network
        is the same whether it is initialised alone or inside a larger ensemble.
        ``init`` sets the law of one layer, ``depth_profile`` how layers vary along depth;
        the two-matrix block draws V (fan-in m) by the same law after the other weights, or
        sets it to zero (``v_init="zero"``). Without ``bias`` b is zero (drawn all the same, so
        the stream of the later draws does not change); the trainer leaves it untrained.
        A per-layer δ_k is drawn N(0, 1/L²) as in the original study, or N(0, ``delta_init_sd``²).
        """
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
        if delta_type not in DELTA_TYPES:
            raise ValueError(f"unknown delta type {delta_type!r}; expected one of {DELTA_TYPES}")
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; expected one of {BLOCKS}")
        if v_init not in V_INITS[block]:
            raise ValueError(f"v_init {v_init!r} does not fit the {block} block; expected one of {V_INITS[block]}")
        bias_sd = init_sd if bias_sd is None else bias_sd
        L, d = depth, dim
        m = d if block == "one-matrix" or hidden_width is None else int(hidden_width)

        def scales(fan_in: int) -> tuple[float, float]:
            return {
                "xavier": (init_sd / fan_in, init_sd / fan_in**0.5),
                "xavier-depth": (init_sd / (L * fan_in), init_sd / (L * fan_in**0.5)),
                "iid-sqrt-depth": (init_sd / (fan_in * L) ** 0.5, bias_sd / L**0.5),
                "gaussian": (init_sd, bias_sd),
            }[init]

        a_sd, b_sd = scales(d)
        draw = lambda shape, gen: along_depth(torch.randn(L, *shape, generator=gen, dtype=torch.float64),
                                                 depth_profile)
        As, bs, deltas, Vs = [], [], [], []
        for s in seeds:
            gen = torch.Generator().manual_seed(stable_seed(key, depth, s, "init"))
            As.append(draw((m, d), gen) * a_sd)
            bs.append(draw((m,), gen) * (b_sd if bias else 0.0))
            z = torch.randn(L, generator=gen, dtype=torch.float64)
            deltas.append(z / L if delta_init_sd is None else z * float(delta_init_sd))
            if block == "two-matrix":
                Vs.append(draw((d, m), gen) * scales(m)[0] if v_init == "law" else torch.zeros(L, d, m, dtype=torch.float64))
        params = {
            "A": torch.stack(As, dim=1),
            "b": torch.stack(bs, dim=1),
        }
        if Vs:
            params["V"] = torch.stack(Vs, dim=1)
        if delta_type == "shared":
            params["c"] = torch.full((1, len(As)), 1.0 / L, dtype=torch.float64)
        elif delta_type == "multi":
            params["delta"] = torch.stack(deltas, dim=1)
        params = {k: v.to(dtype=dtype, device=device).contiguous() for k, v in params.items()}
        return cls(params, delta_type, activation, alpha)

    @classmethod
    def from_numpy(
        cls,
        A: np.ndarray,
        b: np.ndarray,
        delta: np.ndarray,
        delta_type: str,
        activation: str,
        alpha: float = 1.0,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        V: np.ndarray | None = None,
    ) -> "ResNetEnsemble":
        """Rebuild an ensemble from seed-major arrays as written to disk (A (S,L,d,d), b (S,L,d), δ (S,L),
        and V (S,L,d,m) for the two-matrix block)."""
        to = lambda a: torch.as_tensor(np.ascontiguousarray(np.swapaxes(a, 0, 1)), dtype=dtype, device=device)
        params = {"A": to(A).contiguous(), "b": to(b).contiguous()}
        if V is not None:
            params["V"] = to(V).contiguous()
        if delta_type == "shared":
            params["c"] = to(delta)[:1].contiguous()
        elif delta_type == "multi":
            params["delta"] = to(delta).contiguous()
        return cls(params, delta_type, activation, alpha)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Seed-major float64 arrays in the paper's convention: A (S,L,d,d), b (S,L,d), δ_k (S,L),
        and V (S,L,d,m) for the two-matrix block (where A is W, (S,L,m,d))."""
        seed_major = lambda t: np.ascontiguousarray(t.detach().to("cpu", torch.float64).numpy().swapaxes(0, 1))
        out = {
            "A": seed_major(self.params["A"]),
            "b": seed_major(self.params["b"]),
            "delta": seed_major(self.deltas()),
        }
        if self.two_matrix:
            out["V"] = seed_major(self.params["V"])
        return out

    # -- the model -----------------------------------------------------------
    def deltas(self) -> torch.Tensor:
        """The effective δ_k as an (L, S) tensor."""
        A = self.params["A"]
        L, S = A.shape[:2]
        if self.delta_type == "none":
            return torch.ones(L, S, dtype=A.dtype, device=A.device)
        if self.delta_type == "fixed":
            return torch.full((L, S), float(L) ** -self.alpha, dtype=A.dtype, device=A.device)
        if self.delta_type == "shared":
            return self.params["c"].abs().expand(L, S)
        return self.params["delta"]

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        A = self.params["A"]
        x = torch.as_tensor(x, dtype=A.dtype, device=A.device)
        if x.dim() == 2:  # the same inputs for every seed
            x = x.unsqueeze(0).expand(self.n_seeds, *x.shape)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs h_L, shape (S, N, d), for inputs (N, d) or per-seed inputs (S, N, d).

        Evaluation on a whole dataset: z_k, σ(z_k) and h_k live in four work tensors written in
        place, so a deep pass allocates nothing per layer.
        """
        A, b, act = self.params["A"], self.params["b"], self.activation
        delta = self.deltas()
        h = self._inputs(x)
        V = self.params.get("V")
        if torch.is_grad_enabled() and any(t.requires_grad for t in self.params.values()):
            # differentiable by autograd (the reference of the explicit adjoint's tests)
            for k in range(self.depth):
                out = act.fn(torch.baddbmm(b[k].unsqueeze(1), h, A[k].transpose(1, 2)))
                out = out if V is None else torch.bmm(out, V[k].transpose(1, 2))
                h = torch.addcmul(h, delta[k].view(-1, 1, 1), out)
            return h
        if self._compiled is not None:
            return compiled.forward(self._compiled, A, b, self._compiled_deltas(delta), h.contiguous(), act.name)
        hidden = (*h.shape[:-1], A.shape[2])
        z = torch.empty(hidden, dtype=A.dtype, device=A.device)
        sz = torch.empty_like(z)
        states = [torch.empty(h.shape, dtype=A.dtype, device=A.device) for _ in range(2)]
        bs, a_ts = self._layers("b_rows", b.unsqueeze(2)), self._layers("A_view_T", A.transpose(2, 3))
        deltas = self._delta_layers(delta)
        v_ts = None if V is None else self._layers("V_view_T", V.transpose(2, 3))
        for k in range(self.depth):
            torch.baddbmm(bs[k], h, a_ts[k], out=z)
            act.apply_into(z, sz)
            out = sz if V is None else torch.bmm(sz, v_ts[k])
            h = torch.addcmul(h, deltas[k], out, out=states[k % 2])
        return h

    def _buffer(self, name: str, shape, like: torch.Tensor, reuse: bool) -> torch.Tensor:
        """A work tensor; with ``reuse`` the same memory serves every training step, which
        spares the page faults of fresh large allocations (they dominate at large depth)."""
        if not reuse:
            return torch.empty(shape, dtype=like.dtype, device=like.device)
        buf = self._workspace.get(name)
        if buf is None or buf.shape != torch.Size(shape) or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._workspace[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf

    def _layers(self, name: str, tensor: torch.Tensor, cache: bool = True) -> tuple[torch.Tensor, ...]:
        """``tensor.unbind(0)``: the per-layer views. For a reused work tensor or a parameter
        (updated in place) the views are made once and kept under ``name`` while the tensor
        is the same; at large depth making L views per tensor and step costs as much as a
        layer's arithmetic."""
        if not cache:
            return tensor.unbind(0)
        key = (tensor.data_ptr(), tensor.shape, tensor.stride(), tensor.dtype, tensor.device)
        held = self._views.get(name)
        if held is None or held[0] != key:
            held = self._views[name] = (key, tensor.unbind(0))
        return held[1]

    def _delta_layers(self, delta: torch.Tensor, cache: bool = True) -> tuple[torch.Tensor, ...]:
        """Per-layer (S, 1, 1) views of δ; a shared δ is first copied into a work tensor, so
        that its views, like those of a per-layer δ parameter, are made once."""
        if self.delta_type == "shared" and cache:
            delta = self._buffer("delta", delta.shape, delta, reuse=True).copy_(delta)
        return self._layers("delta_view", delta.view(delta.shape[0], -1, 1, 1), cache and self.delta_type in ("shared", "multi"))

    def trajectory(self, x: torch.Tensor, reuse_buffers: bool = False) -> Trajectory:
        """The forward pass keeping every hidden state h_0..h_L, pre-activation z_k and σ(z_k).

        Three tensor operations per layer (z_k = b_k + h_k A_kᵀ in one). With ``reuse_buffers``
        the returned tensors are overwritten by the next call.
        """
        A, b = self.params["A"], self.params["b"]
        delta = self.deltas()
        h0 = self._inputs(x)
        L = self.depth
        A_T = self._buffer("A_T", (*A.shape[:2], A.shape[3], A.shape[2]), A, reuse_buffers)
        A_T.copy_(A.transpose(-1, -2))
        hidden = (*h0.shape[:-1], A.shape[2])
        H = self._buffer("H", (L + 1, *h0.shape), h0, reuse_buffers)
        Z = self._buffer("Z", (L, *hidden), h0, reuse_buffers)
        SZ = self._buffer("SZ", (L, *hidden), h0, reuse_buffers)
        H[0] = h0
        act = self.activation
        hs, zs, szs = (self._layers(name, t, reuse_buffers) for name, t in (("H", H), ("Z", Z), ("SZ", SZ)))
        a_ts, bs = self._layers("A_T", A_T, reuse_buffers), self._layers("b_rows", b.unsqueeze(2))
        if self.two_matrix:  # δ_k V_kᵀ for all layers at once, then one baddbmm per layer
            dv_ts = (self.params["V"] * delta.view(L, -1, 1, 1)).transpose(-1, -2).contiguous().unbind(0)
            for k in range(L):
                torch.baddbmm(bs[k], hs[k], a_ts[k], out=zs[k])
                act.apply_into(zs[k], szs[k])
                torch.baddbmm(hs[k], szs[k], dv_ts[k], out=hs[k + 1])
            return Trajectory(H, Z, SZ)
        deltas = self._delta_layers(delta, reuse_buffers)
        for k in range(L):
            torch.baddbmm(bs[k], hs[k], a_ts[k], out=zs[k])
            act.apply_into(zs[k], szs[k])
            torch.addcmul(hs[k], deltas[k], szs[k], out=hs[k + 1])
        return Trajectory(H, Z, SZ)

    def adjoint(
        self, traj: Trajectory, grad_output: torch.Tensor, keep_adjoint: bool = False, reuse_buffers: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The explicit discrete adjoint of docs/maths.md §5.

        ``grad_output`` is p_L = ∂ℓ/∂h_L (S, N, d). Returns the gradients of the loss with
        respect to every trainable parameter (same shapes as :attr:`params`) and, when
        ``keep_adjoint``, the adjoint states p_0..p_L as an (L+1, S, N, d) tensor.

            p_k = p_{k+1} + δ_k A_kᵀ (σ'(z_k) ⊙ p_{k+1})
            ∂ℓ/∂A_k = δ_k (σ'(z_k) ⊙ p_{k+1}) h_kᵀ,  ∂ℓ/∂b_k = δ_k σ'(z_k) ⊙ p_{k+1}
            ∂ℓ/∂δ_k = p_{k+1}ᵀ σ(z_k)

        For the two-matrix block ``h + δ V σ(A h + b)`` the factor p_{k+1} becomes V_kᵀ p_{k+1}
        (docs/maths.md §5): U_k = δ_k σ'(z_k) ⊙ V_kᵀ p_{k+1}, ∂ℓ/∂V_k = δ_k p_{k+1} σ(z_k)ᵀ,
        ∂ℓ/∂δ_k = p_{k+1}ᵀ V_k σ(z_k).

        The recursion for p is sequential (two operations per layer, a third for ∂ℓ/∂A_k); the
        other gradients are batched operations over the stored states. With ``reuse_buffers``
        the returned gradients are overwritten by the next call.
        """
        A = self.params["A"]
        delta = self.deltas()
        L = self.depth
        # U_k = δ_k σ'(z_k) ⊙ p_{k+1}: the δ_k σ'(z_k) factor for all layers at once
        act = self.activation
        U = self._buffer("U", traj.z.shape, A, reuse_buffers)
        if traj.sz is not None and act.grad_from_value is not None:
            act.grad_from_value(traj.sz, U)
        else:
            U.copy_(act.grad(traj.z))
        U.mul_(delta.view(L, -1, 1, 1))
        P = self._buffer("P", (L + 1, *grad_output.shape), A, reuse_buffers and not keep_adjoint)
        P[L] = grad_output
        reused = reuse_buffers and traj.h is self._workspace.get("H")  # a trajectory of the same workspace
        us, As = self._layers("U", U, reuse_buffers), self._layers("A", A)
        u_ts = self._layers("U_T", U.transpose(2, 3), reuse_buffers)
        ps, hs = self._layers("P", P, reuse_buffers and not keep_adjoint), self._layers("H", traj.h, reused)
        # ∂ℓ/∂A_k = U_kᵀ h_k is taken in the loop, while U_k and h_k are in cache
        grad_A = self._buffer("grad_A", A.shape, A, reuse_buffers)
        grad_As = self._layers("grad_A", grad_A, reuse_buffers)
        trained_delta = self.delta_type in ("shared", "multi")
        if self.two_matrix:
            Vs = self.params["V"].unbind(0)
            for k in range(L - 1, -1, -1):
                us[k].mul_(torch.bmm(ps[k + 1], Vs[k]))
                torch.baddbmm(ps[k + 1], us[k], As[k], out=ps[k])
                torch.bmm(u_ts[k], hs[k], out=grad_As[k])
            sz = traj.sz if traj.sz is not None else self.activation.fn(traj.z)
            # Σ_n p_{k+1} σ(z_k)ᵀ: ∂ℓ/∂V_k is δ_k times it, ∂ℓ/∂δ_k its inner product with V_k
            p_sz = torch.matmul(P[1:].transpose(-1, -2), sz)
            grads = {"A": grad_A, "b": U.sum(dim=2), "V": p_sz * delta.view(L, -1, 1, 1)}
            grad_delta = torch.linalg.vecdot(p_sz.flatten(2), self.params["V"].flatten(2)) if trained_delta else None
        else:
            # ∂ℓ/∂δ_k = p_{k+1}ᵀ σ(z_k), also taken in the loop
            sz = traj.sz if traj.sz is not None else self.activation.fn(traj.z)
            grad_delta = self._buffer("grad_delta", (L, A.shape[1]), A, reuse_buffers) if trained_delta else None
            if trained_delta:
                grad_deltas = self._layers("grad_delta", grad_delta, reuse_buffers)
                p_rows = self._layers("P_rows", P.flatten(2), reuse_buffers and not keep_adjoint)
                sz_rows = self._layers("SZ_rows", sz.flatten(2), reused)
            for k in range(L - 1, -1, -1):
                us[k].mul_(ps[k + 1])
                if trained_delta:
                    torch.linalg.vecdot(p_rows[k + 1], sz_rows[k], out=grad_deltas[k])
                torch.baddbmm(ps[k + 1], us[k], As[k], out=ps[k])
                torch.bmm(u_ts[k], hs[k], out=grad_As[k])
            grads = {"A": grad_A, "b": U.sum(dim=2)}
        if self.delta_type == "shared":
            grads["c"] = torch.sign(self.params["c"]) * grad_delta.sum(dim=0, keepdim=True)
        elif self.delta_type == "multi":
            grads["delta"] = grad_delta
        return grads, (P if keep_adjoint else None)

    def _compiled_deltas(self, delta: torch.Tensor) -> torch.Tensor:
        """δ_k as a contiguous (L, S) work tensor (a shared δ is an expanded view)."""
        return self._buffer("compiled_delta", delta.shape, delta, reuse=True).copy_(delta)

    def _compiled_loss_and_grad(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        A, b = self.params["A"], self.params["b"]
        delta = self._compiled_deltas(self.deltas())
        grads = {"A": self._buffer("grad_A", A.shape, A, True), "b": self._buffer("grad_b", b.shape, b, True)}
        grad_delta = None
        if self.delta_type in ("shared", "multi"):
            grad_delta = self._buffer("grad_delta", delta.shape, A, True)
        loss = compiled.loss_and_grad(self._compiled, A, b, delta, self._inputs(x).contiguous(),
                                      self._inputs(y).contiguous(), self.activation.name, grads["A"], grads["b"],
                                      grad_delta)
        if self.delta_type == "shared":
            grads["c"] = torch.sign(self.params["c"]) * grad_delta.sum(dim=0, keepdim=True)
        elif self.delta_type == "multi":
            grads["delta"] = grad_delta
        return loss, grads

    def loss_and_grad(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-seed MSE loss (mean over samples and coordinates) and its parameter gradients.

        The gradients are work tensors, overwritten by the next call.
        """
        if self._compiled is not None:
            return self._compiled_loss_and_grad(x, y)
        traj = self.trajectory(x, reuse_buffers=True)
        target = self._inputs(y)
        residual = traj.h[-1] - target
        n = residual.shape[1] * residual.shape[2]
        loss = residual.pow(2).sum(dim=(1, 2)) / n
        grads, _ = self.adjoint(traj, residual * (2.0 / n), reuse_buffers=True)
        return loss, grads

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-seed MSE loss without gradients (evaluation)."""
        residual = self.forward(x) - self._inputs(y)
        return residual.pow(2).mean(dim=(1, 2))

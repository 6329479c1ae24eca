"""The optimiser of a ResNet ensemble: Adam or SGD over the stacked parameters of all seeds at
once, each seed's entries updated independently, and seeds that have stopped frozen exactly."""

from __future__ import annotations

import torch

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def finite_per_seed(tensor: torch.Tensor) -> torch.Tensor:
    """(S,) whether every entry of each seed's slice (the seed is dim 1) is finite.

    The largest and smallest entries are finite exactly when all are (NaN propagates through
    both reductions): two reductions in place of a boolean copy of the whole tensor, which
    at large depth cost as much as the optimiser step.
    """
    dims = [d for d in range(tensor.dim()) if d != 1]
    return torch.isfinite(tensor.amax(dim=dims)) & torch.isfinite(tensor.amin(dim=dims))


def _seed_mask(active: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast an (S,) mask onto a parameter whose seed dimension is dim 1."""
    return active.view(1, -1, *([1] * (like.dim() - 2)))


class EnsembleOptimizer:
    """Adam or SGD (with momentum) over the stacked parameters, one multi-tensor kernel per step.

    The update is torch.optim's own kernels called directly — Adam is ``torch.optim.Adam(fused=True)``,
    SGD is ``torch.optim.SGD(foreach=True)``, bitwise (tests/test_optimizer.py checks both) — because
    constructing a ``torch.optim`` optimizer imports TorchDynamo, about a second of CPU in every
    training job, more than a shallow network's whole training.

    Every seed's entries are updated elementwise, so seeds stay independent. Seeds outside
    ``active`` are frozen: their parameters and optimiser state are restored exactly after
    the step. All active seeds have taken the same number of steps, so Adam's single step
    counter serves them all.
    """

    def __init__(self, params: dict[str, torch.Tensor], kind: str, lr: float, momentum: float = 0.0):
        if kind not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}; expected adam or sgd")
        self.kind, self.lr, self.momentum = kind, float(lr), float(momentum)
        self.names = list(params)
        tensors = [params[n] for n in self.names]
        self.device = tensors[0].device
        self.state: dict[str, list[torch.Tensor]] = {}
        if kind == "adam":
            self.state = {
                # torch.optim keeps the fused Adam step count as a float32 tensor beside its parameter
                "step": [torch.zeros((), dtype=torch.float32, device=t.device) for t in tensors],
                "exp_avg": [torch.zeros_like(t, memory_format=torch.preserve_format) for t in tensors],
                "exp_avg_sq": [torch.zeros_like(t, memory_format=torch.preserve_format) for t in tensors],
            }
        # SGD's momentum buffers are made from the first gradient, as torch.optim.SGD does

    def _state_tensors(self) -> list[torch.Tensor]:
        return [t for key, values in self.state.items() if key != "step" for t in values]

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        if self.kind == "adam":
            torch._foreach_add_(self.state["step"], 1)
            torch._fused_adam_(
                params, grads, self.state["exp_avg"], self.state["exp_avg_sq"], [], self.state["step"],
                amsgrad=False, lr=self.lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], weight_decay=0.0,
                eps=ADAM_EPS, maximize=False, grad_scale=None, found_inf=None,
            )
            return
        if self.momentum != 0.0:
            if "momentum_buffer" not in self.state:
                self.state["momentum_buffer"] = [g.detach().clone() for g in grads]
            else:
                torch._foreach_mul_(self.state["momentum_buffer"], self.momentum)
                torch._foreach_add_(self.state["momentum_buffer"], grads, alpha=1.0)
            grads = self.state["momentum_buffer"]
        torch._foreach_add_(params, grads, alpha=-self.lr)

    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], active: torch.Tensor) -> None:
        frozen_any = not bool(active.all())
        if frozen_any:
            if not bool(active.any()):
                return
            saved = [(t, t.clone()) for t in [params[n] for n in self.names] + self._state_tensors()]
        with torch.no_grad():
            self._update([params[n] for n in self.names], [grads[n] for n in self.names])
        if frozen_any:
            for tensor, before in saved:
                tensor.copy_(torch.where(_seed_mask(active, tensor), tensor, before))

    def state_dict(self) -> dict:
        return {"kind": self.kind, "state": {key: [t.clone() for t in values] for key, values in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore the optimiser state onto the parameters' device."""
        if state.get("kind") != self.kind:
            raise ValueError(f"optimizer state of kind {state.get('kind')!r} cannot resume a {self.kind!r} run")
        self.state = {key: [v.to(self.device) for v in values] for key, values in state["state"].items()}

"""Opacus 1.6.0 with its noise and Poisson sampling drawn from a :class:`SecureRandom`.

Imported lazily by :func:`crypten_fl.fedtrain.local_training.dp_sgd.make_private` (importing
Opacus costs about a second). Opacus lets callers pass a ``torch.Generator`` only, and its
``secure_mode`` needs ``torchcsprng``; instead of patching Opacus, :class:`SecurePrivacyEngine`
overrides the engine's two factory hooks, ``_prepare_optimizer`` and ``_prepare_data_loader``, for
the one configuration the project uses (flat clipping, hooks mode, one process, Poisson
sampling) and refuses any other. Everything else — per-sample gradients, clipping, scaling,
accounting — is Opacus' own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from crypten_fl.fedtrain.secure_noise import SecureRandom
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch.utils.data import DataLoader

#: γ of automatic clipping: per-example gradients are scaled by C / (‖g‖ + γ) (Bu et al.)
AUTOMATIC_CLIPPING_STABILITY = 0.01


class SecureNoiseDPOptimizer(DPOptimizer):
    """Opacus' DPOptimizer with the Gaussian noise N(0, (σ·C)²) drawn from ``rng``.

    One draw covers every parameter per step (fewer keystream requests than one per tensor).
    With ``automatic`` clipping every per-example gradient g is scaled by C / (‖g‖ + γ) instead
    of min(1, C / ‖g‖): its norm stays below C (the same sensitivity) and no clipping norm needs
    tuning (Bu, Wang, Zha & Karypis, "Automatic clipping: differentially private deep learning
    made easier and stronger", NeurIPS 2023).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, rng: SecureRandom,
                 automatic: bool = False, noise_share: float = 1.0,
                 reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(optimizer, generator=None, secure_mode=False, **kwargs)
        self.rng = rng
        self.automatic = automatic
        #: the fraction of the noise std drawn here (distributed noise: the others add theirs)
        self.noise_share = noise_share
        #: sums the noised gradient sums of all hospitals (distributed noise), else None
        self.reduce = reduce
        #: distributed noise: the parameters (by id) that are not summed across hospitals (a
        #: personal head, FedPer): they get this party's full noise, and their sum is rescaled
        #: from the federation's expected batch to this party's (:meth:`keep_local`)
        self.local_ids: frozenset[int] = frozenset()
        self.local_scale = 1.0

    def keep_local(self, params: list[torch.nn.Parameter], scale: float) -> None:
        """With ``reduce``: leave ``params`` out of the sum across hospitals; they are noised
        with the full noise N(0, (σ·C)²) and their noisy sum is multiplied by ``scale`` (the
        federation's expected batch over this party's, which Opacus' scaling then divides by)."""
        self.local_ids = frozenset(id(p) for p in params)
        self.local_scale = scale

    def clip_and_accumulate(self) -> None:
        """Flat clipping as Opacus does it, or automatic clipping; sums into ``summed_grad``."""
        if not self.automatic:
            super().clip_and_accumulate()
            return
        samples = self.grad_samples
        if len(samples[0]) == 0:  # an empty Poisson batch
            factor = torch.zeros((0,), device=samples[0].device)
        else:
            norms = torch.stack([g.reshape(len(g), -1).norm(2, dim=-1) for g in samples], dim=1)
            factor = self.max_grad_norm / (norms.norm(2, dim=1) + AUTOMATIC_CLIPPING_STABILITY)
        for p in self.params:
            _check_processed_flag(p.grad_sample)
            sample = self._get_flat_grad_sample(p).to(p.dtype)
            grad = torch.einsum("i,i...", factor.to(device=sample.device, dtype=p.dtype), sample)
            p.summed_grad = grad if p.summed_grad is None else p.summed_grad + grad
            _mark_as_processed(p.grad_sample)

    def add_noise(self) -> None:
        """``p.grad = p.summed_grad + N(0, (noise_share · noise_multiplier · max_grad_norm)²)``
        for every p; with ``reduce``, then the sum of every hospital's such ``p.grad``. The
        parameters of :meth:`keep_local` get the full noise and no sum."""
        for p in self.params:
            _check_processed_flag(p.summed_grad)
        std = self.noise_multiplier * self.max_grad_norm
        shared = [p for p in self.params if id(p) not in self.local_ids]
        local = [p for p in self.params if id(p) in self.local_ids]
        if shared:
            noisy = self._noisy_sum(shared, self.noise_share * std)
            self._set_grads(shared, noisy if self.reduce is None else self.reduce(noisy))
        if local:
            self._set_grads(local, self._noisy_sum(local, std) * self.local_scale)

    def _noisy_sum(self, params: list[torch.nn.Parameter], std: float) -> torch.Tensor:
        """The flat float64 ``summed_grad`` of ``params`` plus one draw of N(0, std²)."""
        flat = torch.cat([p.summed_grad.reshape(-1).to(torch.float64) for p in params])
        return flat + self.rng.normal_like(torch.empty(flat.numel()), std).to(torch.float64)

    @staticmethod
    def _set_grads(params: list[torch.nn.Parameter], flat: torch.Tensor) -> None:
        start = 0
        for p in params:
            summed = p.summed_grad
            piece = flat[start : start + summed.numel()].view_as(summed)
            start += summed.numel()
            p.grad = piece.to(dtype=summed.dtype, device=summed.device).view_as(p)
            _mark_as_processed(summed)


class SecurePoissonSampler(UniformWithReplacementSampler):
    """Poisson sampling (each record independently with probability ``sample_rate``) from
    ``rng``'s uniforms instead of ``torch.rand`` on a seeded generator."""

    def __init__(self, *, num_samples: int, sample_rate: float, rng: SecureRandom,
                 steps: int | None = None) -> None:
        super().__init__(num_samples=num_samples, sample_rate=sample_rate, steps=steps)
        self.rng = rng

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            yield (self.rng.uniform(self.num_samples) < self.sample_rate).nonzero()[0].tolist()


class SecurePrivacyEngine(PrivacyEngine):
    """A PrivacyEngine whose optimizer noise and Poisson sampling come from one SecureRandom."""

    def __init__(self, *, accountant: str, rng: SecureRandom | None = None,
                 automatic_clipping: bool = False, steps_per_epoch: int | None = None,
                 noise_share: float = 1.0,
                 reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        with warnings.catch_warnings():  # Opacus' "Secure RNG turned off" is about its own
            warnings.filterwarnings("ignore", message="Secure RNG turned off")  # generator
            super().__init__(accountant=accountant, secure_mode=False)
        self.rng = rng or SecureRandom()
        self.automatic_clipping = automatic_clipping
        #: distributed noise: the federation's steps per pass (sample rate 1/steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        self.noise_share = noise_share
        self.reduce = reduce

    def _prepare_optimizer(self, *, optimizer: torch.optim.Optimizer, noise_generator: Any = None,
                           distributed: bool = False, clipping: str = "flat",
                           grad_sample_mode: str = "hooks", **kwargs: Any) -> DPOptimizer:
        if noise_generator is not None or distributed or clipping != "flat" \
                or grad_sample_mode != "hooks":
            raise ValueError("secure noise supports flat clipping in hooks mode, one process, "
                             "and no noise_generator")
        if isinstance(optimizer, DPOptimizer):
            optimizer = optimizer.original_optimizer
        return SecureNoiseDPOptimizer(optimizer, rng=self.rng,
                                      automatic=self.automatic_clipping,
                                      noise_share=self.noise_share, reduce=self.reduce, **kwargs)

    def _prepare_data_loader(self, data_loader: DataLoader, *, poisson_sampling: bool,
                             distributed: bool, batch_first: bool = True,
                             rand_on_empty: bool = False) -> DataLoader:
        if not poisson_sampling or distributed:
            raise ValueError("secure sampling supports Poisson sampling in one process only")
        self.dataset = data_loader.dataset
        # Opacus' loader for its empty-batch collate; its seeded sampler is replaced
        opacus_loader = DPDataLoader.from_data_loader(data_loader, batch_first=batch_first,
                                                      rand_on_empty=rand_on_empty)
        steps = self.steps_per_epoch
        sampler = SecurePoissonSampler(num_samples=len(data_loader.dataset),  # type: ignore[arg-type]
                                       sample_rate=opacus_loader.sample_rate if steps is None
                                       else 1 / steps, rng=self.rng, steps=steps)
        return DataLoader(data_loader.dataset, batch_sampler=sampler,
                          collate_fn=opacus_loader.collate_fn, generator=data_loader.generator)

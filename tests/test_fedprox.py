"""FedProx's proximal term: its gradient exactly, only on shared parameters, added after DP-SGD's
clipping and noise, and a model that stays nearer the global one the larger μ."""

from __future__ import annotations

import torch
from crypten_fl.fedtrain.local_training.dp_sgd import DPConfig
from crypten_fl.fedtrain.local_training.proximal import ProximalTerm
from crypten_fl.fedtrain.local_training.trainer import LocalTrainer, TrainConfig
from helpers.ml_core import learnable_inputs, tiny_model
from torch import nn

CONFIG = TrainConfig(lr=3e-3, batch_size=64, seed=11, num_threads=1)


def test_the_gradient_of_the_term_is_mu_times_the_distance() -> None:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0]]))
        layer.bias.fill_(0.5)
    term = ProximalTerm.around(layer, 0.5, lambda name: True)
    with torch.no_grad():
        layer.weight.add_(torch.tensor([[2.0, 4.0]]))
        layer.bias.sub_(1.0)
    layer.weight.grad = torch.tensor([[0.25, 0.0]])
    layer.bias.grad = None  # a parameter without a gradient is left alone
    term.add_gradient()
    assert torch.equal(layer.weight.grad, torch.tensor([[0.25 + 0.5 * 2.0, 0.5 * 4.0]]))
    assert layer.bias.grad is None


def test_only_shared_parameters_are_anchored() -> None:
    model = tiny_model()
    term = ProximalTerm.around(model, 1.0, lambda name: model.is_shared_key(name, 1))
    names = {id(p): n for n, p in model.named_parameters()}
    anchored = {names[id(p)] for p, _ in term.anchors}
    assert anchored and all(not n.startswith(f"head.{len(model.head) - 1}.") for n in anchored)
    assert any(n.startswith(f"head.{len(model.head) - 1}.") for n in names.values())


def test_under_dp_the_term_is_added_after_clipping_and_noise(monkeypatch) -> None:
    trainer = LocalTrainer(tiny_model(), learnable_inputs(128), CONFIG,
                           DPConfig(target_epsilon=2, total_epochs=1))
    assert trainer._private is not None
    optimizer = trainer._private.optimizer
    term = ProximalTerm.around(trainer.model, 10.0, lambda name: True)
    with torch.no_grad():
        for param, _ in term.anchors:
            param.add_(0.5)
    noised_grads: list[torch.Tensor] = []
    errors: list[float] = []
    pre_step, step = optimizer.pre_step, optimizer.original_optimizer.step

    def noised(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = pre_step(*args, **kwargs)
        noised_grads[:] = [p.grad.clone() for p, _ in term.anchors]
        return out

    def stepped(*args, **kwargs):  # type: ignore[no-untyped-def]
        for (param, anchor), before in zip(term.anchors, noised_grads, strict=True):
            expected = before + 10.0 * (param.detach() - anchor)
            errors.append(float((param.grad - expected).abs().max()))
        return step(*args, **kwargs)

    monkeypatch.setattr(optimizer, "pre_step", noised)
    monkeypatch.setattr(optimizer.original_optimizer, "step", stepped)
    trainer.train_epochs(1, proximal=term)
    assert errors, "no optimizer step was taken"
    assert max(errors) < 1e-5


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return sum(float((a[k] - b[k]).pow(2).sum()) for k in a) ** 0.5


def test_a_larger_mu_keeps_local_training_nearer_the_global_model() -> None:
    train = learnable_inputs(256)
    distances = []
    for mu in (0.0, 1.0, 100.0):
        trainer = LocalTrainer(tiny_model(), train, CONFIG)
        start = trainer.state_dict()
        term = ProximalTerm.around(trainer.model, mu, lambda name: True) if mu else None
        trainer.train_epochs(3, proximal=term)
        distances.append(_distance(trainer.state_dict(), start))
    assert distances[0] > distances[1] > distances[2]

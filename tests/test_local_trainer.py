"""LocalTrainer: learning, determinism, DP accounting across rounds, checkpoint/restore."""

from __future__ import annotations

import io

import pytest
import torch
from crypten_fl.fedtrain.data.preprocess import ModelInputs
from crypten_fl.fedtrain.local_training.dp_sgd import DPConfig
from crypten_fl.fedtrain.local_training.trainer import LocalTrainer, TrainConfig
from helpers.ml_core import learnable_inputs, tiny_model
from sklearn.metrics import roc_auc_score

CONFIG = TrainConfig(lr=3e-3, batch_size=64, seed=11, num_threads=1)


def _states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _mean_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in states]).mean(dim=0) for k in states[0]}


def test_training_reduces_loss_and_learns() -> None:
    train, test = learnable_inputs(512, seed=0), learnable_inputs(256, seed=1)
    trainer = LocalTrainer(tiny_model(), train, CONFIG)
    first = trainer.train_epochs(1)
    trainer.train_epochs(14)
    last = trainer.train_epochs(1)
    assert last < 0.6 * first
    probs = trainer.predict(test)
    assert probs.shape == (256, 3) and ((probs >= 0) & (probs <= 1)).all()
    assert roc_auc_score(test.labels.numpy()[:, 0], probs[:, 0]) > 0.85


def test_same_seed_same_weights_and_trainers_do_not_disturb_each_other() -> None:
    train = learnable_inputs(256)
    alone = LocalTrainer(tiny_model(), train, CONFIG)
    alone.train_epochs(2)
    a = LocalTrainer(tiny_model(), train, CONFIG)
    other = LocalTrainer(tiny_model(seed=5), train, TrainConfig(batch_size=64, seed=99))
    a.train_epochs(1)
    other.train_epochs(1)  # interleaved: must not change a's random streams
    torch.rand(3)  # neither must the caller's use of the global RNG
    a.train_epochs(1)
    assert _states_equal(a.state_dict(), alone.state_dict())
    different = LocalTrainer(tiny_model(), train, TrainConfig(lr=3e-3, batch_size=64, seed=12))
    different.train_epochs(2)
    assert not _states_equal(different.state_dict(), alone.state_dict())


def test_state_dicts_use_clean_stock_keys_with_and_without_dp() -> None:
    train = learnable_inputs(128)
    stock_keys = set(tiny_model().state_dict())
    plain = LocalTrainer(tiny_model(), train, CONFIG)
    private = LocalTrainer(tiny_model(), train, CONFIG, DPConfig(target_epsilon=5, total_epochs=2))
    for trainer in (plain, private):
        assert set(trainer.state_dict()) == stock_keys
        shared = trainer.shared_state(personal_layers=trainer.model.n_head_layers)
        assert shared and all(k.startswith("encoder.") for k in shared)
    assert set(plain.shared_state()) == stock_keys


def test_aggregated_weights_reach_the_opacus_wrapped_model() -> None:
    train, test = learnable_inputs(128), learnable_inputs(32, seed=3)
    private = LocalTrainer(tiny_model(), train, CONFIG, DPConfig(target_epsilon=5, total_epochs=2))
    donor = tiny_model(seed=7).eval()
    private.load_shared_state(donor.state_dict())
    assert _states_equal(private.state_dict(), donor.state_dict())
    with torch.no_grad():
        expected = torch.sigmoid(donor(test.x, test.static)).numpy()
    torch.testing.assert_close(private.predict(test), expected, atol=1e-5, rtol=1e-5)
    private.train_epochs(1)  # the optimizer still updates the loaded parameters
    assert not _states_equal(private.state_dict(), donor.state_dict())


def test_dp_epsilon_reaches_target_after_planned_epochs() -> None:
    trainer = LocalTrainer(
        tiny_model(), learnable_inputs(256), CONFIG, DPConfig(target_epsilon=3.0, total_epochs=3)
    )
    trainer.train_epochs(3)
    report = trainer.privacy_report()
    assert report is not None
    assert report["epsilon"] == pytest.approx(3.0, abs=0.02)
    assert report["delta"] == pytest.approx(256**-1.1) and report["delta"] < 1 / 256
    assert report["steps"] == 3 * 4 and report["sample_rate"] == 0.25
    assert report["noise_multiplier"] > 0 and report["max_grad_norm"] == 1.0
    assert report["secure_rng"] is True
    with pytest.raises(ValueError, match="calibrated for 3 epochs"):
        trainer.train_epochs(1)


def test_dp_accountant_continues_across_rounds_like_one_continuous_run() -> None:
    dp = DPConfig(target_epsilon=4.0, total_epochs=2)
    hospitals = [
        LocalTrainer(tiny_model(), learnable_inputs(192, seed=s), CONFIG, dp) for s in (0, 1)
    ]
    epsilons = []
    for _ in range(2):  # two federated rounds of one local epoch each
        for trainer in hospitals:
            trainer.train_epochs(1)
        mean = _mean_state([t.shared_state() for t in hospitals])
        for trainer in hospitals:
            trainer.load_shared_state(mean)
        epsilons.append(hospitals[0].privacy_report()["epsilon"])  # type: ignore[index]
    assert epsilons[1] > epsilons[0] > 0
    continuous = LocalTrainer(tiny_model(), learnable_inputs(192, seed=0), CONFIG, dp)
    continuous.train_epochs(2)
    reference = continuous.privacy_report()
    assert reference is not None
    assert epsilons[1] == pytest.approx(reference["epsilon"], rel=1e-12)
    assert hospitals[0].privacy_report()["steps"] == reference["steps"]  # type: ignore[index]


@pytest.mark.parametrize("use_dp", [False, True])
def test_checkpoint_restore_continues_identically_without_dp_and_with_fresh_noise_with_dp(
        use_dp: bool) -> None:
    train = learnable_inputs(192)
    dp = DPConfig(target_epsilon=4.0, total_epochs=3) if use_dp else None
    original = LocalTrainer(tiny_model(), train, CONFIG, dp)
    original.train_epochs(1)
    buffer = io.BytesIO()
    torch.save(original.checkpoint(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert set(saved["rng"]) == {"loader", "torch"}  # no DP noise state: it is not reproducible
    original.train_epochs(2)

    resumed = LocalTrainer(tiny_model(seed=42), train, CONFIG, dp)  # different init: restored
    resumed.restore(saved)
    assert _states_equal(resumed.state_dict(), saved["model"])
    resumed.train_epochs(2)
    # without DP bit-for-bit; with DP the noise and the Poisson batches after the restore are
    # fresh OS randomness, so the weights differ while the accounting continues identically
    assert _states_equal(resumed.state_dict(), original.state_dict()) is not use_dp
    assert resumed.privacy_report() == original.privacy_report()
    if use_dp:
        with pytest.raises(ValueError, match="noise multiplier"):
            other = DPConfig(target_epsilon=8.0, total_epochs=3)
            LocalTrainer(tiny_model(), train, CONFIG, other).restore(saved)


def test_invalid_configurations() -> None:
    unlabelled = ModelInputs(torch.zeros(1, 6, 8), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="labels"):
        LocalTrainer(tiny_model(), unlabelled)
    with pytest.raises(ValueError, match="target_epsilon"):
        DPConfig(target_epsilon=0, total_epochs=1)
    with pytest.raises(ValueError, match="delta"):
        DPConfig(target_epsilon=1, total_epochs=1, delta=1.5)


def test_dp_survives_empty_poisson_batches_and_reports_progress() -> None:
    calls: list[tuple[str, float, float | None]] = []
    trainer = LocalTrainer(
        tiny_model(),
        learnable_inputs(4),
        TrainConfig(batch_size=1, seed=1),
        DPConfig(target_epsilon=10.0, total_epochs=10),
    )
    # Poisson sampling comes from the OS CSPRNG (no seed fixes it): at rate 1/4 a batch of 4
    # records is empty with probability (3/4)^4 ≈ 0.32, so 40 batches hold one but for 2.5e-7
    sizes: list[int] = []
    loss_fn = trainer.loss_fn
    trainer.loss_fn = lambda out, y: (sizes.append(len(y)), loss_fn(out, y))[1]  # type: ignore
    loss = trainer.train_epochs(
        10, progress=lambda task, done, total=None: calls.append((task, done, total))
    )
    assert len(sizes) == 40 and 0 in sizes
    assert loss > 0 and all(torch.isfinite(v).all() for v in trainer.state_dict().values())
    assert trainer.privacy_report()["steps"] == 40  # type: ignore[index]
    assert calls[-1] == ("local training", 40, 40)

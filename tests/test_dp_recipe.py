"""The DP recipe (issue 12, item 1): DP-SGD settings from the training-set size and whether the
model starts pretrained, every choice overridable, the choices recorded; head-only DP training
leaves the encoder exactly as it started."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import DP_SGD_OPTIONS, TrainConfig
from crypten_fl.fedtrain.local_training import dp_recipe
from crypten_fl.fedtrain.local_training.dp_sgd import DPConfig
from crypten_fl.fedtrain.local_training.trainer import LocalTrainer
from crypten_fl.fedtrain.local_training.trainer import TrainConfig as LocalConfig
from crypten_fl.fedtrain.sessions.hospital import build_model
from helpers.ml_core import learnable_inputs, tiny_model
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing",
                                        "ignore:Optimal order is the largest alpha")


def test_the_recipe_for_a_demo_sized_hospital() -> None:
    recipe = dp_recipe.choose(600, epochs=40)  # 5 steps per epoch: 200 steps
    assert recipe == dp_recipe.DPRecipe(
        batch_size=128, lr=5e-3, clipping="automatic", max_grad_norm=1.0, trainable="all",
        dropout=0.0, chosen=("batch_size", "lr", "clipping", "max_grad_norm", "trainable",
                             "dropout"))


@pytest.mark.parametrize("n_train, batch", [(2400, 128), (512, 128), (200, 50), (40, 16),
                                             (10, 10), (1, 1)])
def test_the_batch_is_at_most_128_and_a_quarter_of_the_split(n_train, batch) -> None:
    assert dp_recipe.recipe_batch(n_train) == batch


@given(st.integers(1, 10**6))
def test_every_hospital_gets_a_batch_it_can_fill_and_several_steps_per_epoch(n_train) -> None:
    batch = dp_recipe.recipe_batch(n_train)
    assert 1 <= batch <= min(n_train, dp_recipe.DP_BATCH)
    if n_train >= 4 * dp_recipe.MIN_DP_BATCH:
        assert n_train // batch >= 4


def test_a_pretrained_start_trains_the_head_and_options_override_the_recipe() -> None:
    assert dp_recipe.choose(600, epochs=40, pretrained=True).trainable == "head"
    recipe = dp_recipe.choose(600, epochs=40, pretrained=True, batch_size=64, lr=3e-3,
                              clipping="flat", max_grad_norm=0.5, trainable="all", dropout=0.2)
    assert (recipe.batch_size, recipe.lr, recipe.clipping, recipe.max_grad_norm,
            recipe.trainable, recipe.dropout, recipe.chosen) == (64, 3e-3, "flat", 0.5, "all",
                                                                 0.2, ())
    assert recipe.as_json()["chosen"] == []


@pytest.mark.parametrize("n_train, epochs, steps_per_epoch, lr", [
    (600, 40, None, 5e-3),          # the demo's hospitals: 5 steps × 40 epochs
    (2400, 40, None, 5e-3 * (200 / 760) ** 0.5),  # the 12k federation's: 19 × 40 steps
    (9857, 40, 19, 5e-3 * (200 / 760) ** 0.5),    # distributed noise: the federation's steps
    (600, 10, None, 5e-3 * 4 ** 0.5),             # 50 steps
    (600, 2, None, 1e-2)])                        # 10 steps: capped
def test_the_learning_rate_falls_as_one_over_root_steps(n_train, epochs, steps_per_epoch,
                                                        lr) -> None:
    recipe = dp_recipe.choose(n_train, epochs=epochs, steps_per_epoch=steps_per_epoch)
    assert recipe.lr == pytest.approx(lr, rel=1e-12) and "lr" in recipe.chosen
    assert dp_recipe.choose(n_train, epochs=epochs, lr=3e-3).lr == 3e-3  # --dp-lr wins


@given(st.integers(1, 10**7), st.integers(1, 10**7))
def test_a_longer_run_never_gets_a_larger_rate(steps, more) -> None:
    assert dp_recipe.recipe_lr(steps + more) <= dp_recipe.recipe_lr(steps) <= dp_recipe.MAX_DP_LR


@pytest.mark.parametrize("epsilon, dropout, expected", [
    (None, None, 0.1), (3.0, None, 0.0), (None, 0.3, 0.3), (3.0, 0.3, 0.3), (1.0, 0.0, 0.0)])
def test_the_model_has_no_dropout_under_dp_unless_asked(epsilon, dropout, expected) -> None:
    config = TrainConfig(fed="f", dp_epsilon=epsilon, dropout=dropout)
    assert config.model_dropout == expected
    model = build_model(config, n_features=6, n_static=43, n_labels=12, n_bins=8)
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {expected}
    # the final model's jobs (evaluate, audit) run it in eval mode: dropout plays no part there
    assert config.for_final_model().dropout == dropout


@pytest.mark.parametrize("field, value, message", [
    ("dp_lr", 0.01, "--dp-lr needs --dp-epsilon"),
    ("dp_batch_size", 32, "--dp-batch-size needs --dp-epsilon"),
    ("dp_clipping", "flat", "--dp-clipping needs --dp-epsilon"),
    ("dp_trainable", "head", "--dp-trainable needs --dp-epsilon"),
    ("max_grad_norm", 1.0, "--max-grad-norm needs --dp-epsilon"),
])
def test_dp_options_without_dp_are_refused(field, value, message) -> None:
    with pytest.raises(UserError, match=message):
        TrainConfig(fed="f", **{field: value}).validate()


@pytest.mark.parametrize("field, value, message", [
    ("dp_lr", -1.0, "--dp-lr must be a positive finite number"),
    ("dp_batch_size", 0, "--dp-batch-size must be >= 1"),
    ("dp_clipping", "per-layer", "--dp-clipping must be one of automatic, flat"),
    ("dp_trainable", "encoder", "--dp-trainable must be one of all, head"),
    ("max_grad_norm", float("inf"), "--max-grad-norm must be a positive finite number"),
])
def test_bad_dp_options_are_named(field, value, message) -> None:
    with pytest.raises(UserError, match=message):
        TrainConfig(fed="f", dp_epsilon=3.0, **{field: value}).validate()


def test_turning_dp_off_clears_every_dp_option() -> None:
    config = TrainConfig(fed="f", dp_epsilon=3.0, **{name: None for name in DP_SGD_OPTIONS})
    config = dataclasses.replace(config, dp_lr=0.02, dp_trainable="head")
    plain = config.with_dp_sgd(None).validate()
    assert plain.dp_epsilon is None and all(getattr(plain, n) is None for n in DP_SGD_OPTIONS)


def test_head_only_dp_training_leaves_the_encoder_as_it_started() -> None:
    model = tiny_model()
    trainer = LocalTrainer(model, learnable_inputs(128), LocalConfig(
        lr=1e-2, batch_size=32, seed=3, num_threads=1, trainable=("head",)),
        DPConfig(target_epsilon=3.0, total_epochs=2, clipping="automatic"))
    before = trainer.state_dict()
    trainer.train_epochs(2)
    after = trainer.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head") for k in changed)
    assert trainer.privacy_report()["trained"] == "head"


@pytest.mark.parametrize(("strategy", "option"), [
    ("split", "dp_clipping"), ("split", "dp_trainable"), ("vertical", "dp_batch_size"),
    ("vertical", "dp_clipping"), ("vertical", "dp_trainable")])  # split takes --dp-batch-size
def test_split_and_vertical_refuse_recipe_options_their_mechanisms_do_not_use(strategy,
                                                                               option) -> None:
    from crypten_fl.fedtrain import strategies

    value = {"dp_batch_size": 32, "dp_clipping": "flat", "dp_trainable": "all"}[option]
    config = TrainConfig(fed="f", strategy=strategy, dp_epsilon=3.0, **{option: value})
    flag = "--" + option.replace("_", "-")
    with pytest.raises(UserError, match=f"{flag} is not used by --strategy {strategy}"):
        strategies.get(strategy).check_config(config)

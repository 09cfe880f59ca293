"""Training options are declared once: TrainConfig holds every default, the commands that train
take their options from cli/options.py, and one table maps the names that differ."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli import sweep, train
from crypten_fl.fedtrain.config import TrainConfig

#: TrainConfig fields no command line exposes (model internals, the per-party thread count and
#: the pretrained weights' hash, which train records)
NOT_ON_THE_COMMAND_LINE = {"dim_feedforward", "threads_per_party",
                           "init_from_sha256"}


def _params(module) -> dict[str, object]:
    """The command's options by their parameter name, with their defaults."""
    command = typer.main.get_command_from_info(
        typer.models.CommandInfo(callback=module.command), pretty_exceptions_short=True,
        rich_markup_mode="rich")
    return {p.name: p.default for p in command.params}


@pytest.mark.parametrize("module", [train, sweep])
def test_every_training_option_has_the_config_default(module) -> None:
    # the declared defaults (a None the config resolves, e.g. --head-hidden by strategy, stays None)
    declared = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, default in _params(module).items():
        field = opt.FIELD.get(name, name)
        if field in declared and field not in ("fed", "dp_epsilon", "strategy"):
            assert default == declared[field], name


def test_train_reaches_every_config_field_and_passes_each_option_through() -> None:
    params = _params(train)
    reached = {opt.FIELD.get(name, name) for name in params}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields - reached == NOT_ON_THE_COMMAND_LINE
    options = {name: f"value of {name}" for name in params}
    config = opt.training_config(options)
    for name in params:
        field = opt.FIELD.get(name, name)
        if field in fields:
            assert getattr(config, field) == f"value of {name}", name

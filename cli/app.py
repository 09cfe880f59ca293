"""The `crypten-fl` Typer application: one module per subcommand in cli/, registered here."""

from __future__ import annotations

import typer
from crypten_fl.cli import (
    audit,
    compare,
    evaluate,
    extract,
    node,
    partition,
    prepare,
    pretrain,
    provision,
    sweep,
    synth,
    train,
)

app = typer.Typer(
    name="crypten-fl",
    help=(
        "Secure federated learning on MIMIC-IV ICU stays: synthetic data, DuckDB extraction, "
        "hospital partitions, CrypTen-secured training and evaluation."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _name, _module in {
    "synth": synth,
    "extract": extract,
    "partition": partition,
    "prepare": prepare,
    "pretrain": pretrain,
    "train": train,
    "evaluate": evaluate,
    "compare": compare,
    "sweep": sweep,
    "node": node,
    "audit": audit,
    "provision": provision,
}.items():
    app.command(_name, help=_module.command.__doc__)(_module.command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

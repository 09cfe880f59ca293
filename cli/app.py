"""The `crypten-fl` Typer application: one module per subcommand, registered here."""

from __future__ import annotations

import importlib

import typer

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

# name -> module in cli/ whose `command` function implements it
SUBCOMMANDS: dict[str, str] = {
    "synth": "cli.synth",
    "extract": "cli.extract",
    "partition": "cli.partition",
    "train": "cli.train",
    "evaluate": "cli.evaluate",
    "compare": "cli.compare",
    "sweep": "cli.sweep",
    "node": "cli.node",
}

for _name, _module in SUBCOMMANDS.items():
    try:
        _mod = importlib.import_module(_module)
    except ModuleNotFoundError as _err:  # a subcommand not yet built must not break the others
        if _err.name != _module:
            raise
        continue
    app.command(_name, help=_mod.command.__doc__)(_mod.command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

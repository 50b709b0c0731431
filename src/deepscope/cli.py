"""The `deepscope` command line. Each subcommand lives in `deepscope/commands/<name>.py`
and is imported only when it runs, so `deepscope --help` stays fast."""

from __future__ import annotations

import importlib
from typing import Any

import click

from deepscope.errors import OptionalDependencyError

# optional package -> the extra that installs it (pyproject.toml)
_EXTRAS = {"torch": "torch", "onnx": "onnx", "safetensors": "safetensors", "h5py": "keras"}

# name -> ("module:click command attribute", one-line help shown by `deepscope --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "deepscope.commands.demo:demo",
        "Train a small CNN on bundled digits and show every view.",
    ),
    "serve": ("deepscope.commands.serve:serve", "Serve the dashboard for a log directory."),
    "view": (
        "deepscope.commands.view:view",
        "Open a model in the graph panel (live views with --inputs).",
    ),
    "graph": ("deepscope.commands.graph:graph", "Draw a model's graph to SVG, PNG or JSON."),
    "summary": (
        "deepscope.commands.summary:summary",
        "Print a model's layer table (shapes, params, MACs).",
    ),
    "weights": (
        "deepscope.commands.weights:weights",
        "Write a model file's weight heatmaps, spectra and statistics.",
    ),
    "diff": (
        "deepscope.commands.diff:diff",
        "Compare the weights of two model files.",
    ),
    "report": ("deepscope.commands.report:report", "Write one self-contained offline HTML report."),
    "import-tb": (
        "deepscope.commands.import_tb:import_tb",
        "Import TensorBoard event files into a logdir.",
    ),
    "migrate": (
        "deepscope.commands.migrate:migrate",
        "Copy runs into another store (a logdir into PostgreSQL); resumable, verified.",
    ),
    "rm": (
        "deepscope.commands.rm:rm",
        "Delete runs from a logdir or a PostgreSQL store (asks first unless --yes).",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        try:
            command: click.Command = getattr(importlib.import_module(module_name), attr)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("deepscope"):
                return _not_available(cmd_name, entry[1])
            raise
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a missing optional package is a one-line install hint."""
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top not in _EXTRAS:
                raise
            raise click.ClickException(
                f"'deepscope {ctx.invoked_subcommand}' needs the '{top}' package: "
                f"pip install 'deepscope[{_EXTRAS[top]}]'"
            ) from exc
        except OptionalDependencyError as exc:
            raise click.ClickException(str(exc)) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _not_available(name: str, help_text: str) -> click.Command:
    def run() -> None:
        raise click.ClickException(f"'deepscope {name}' is not available in this build yet.")

    return click.Command(name, callback=run, help=help_text)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deepscope")
def main(**_: Any) -> None:
    """deepscope: see inside neural networks.

    Log training with `deepscope.init()` in Python, then look at it with
    `deepscope serve LOGDIR`. Open a model file with `deepscope view MODEL`.
    Start with `deepscope demo` to see every view on bundled data.
    """


if __name__ == "__main__":
    main()

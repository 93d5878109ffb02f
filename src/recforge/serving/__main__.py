"""``python -m recforge.serving serve|batch ...``: the serving commands without the full CLI."""

import typer

from recforge.cli.serve_cmds import register

app = typer.Typer(add_completion=False, no_args_is_help=True, help="recforge serving commands")
register(app)

if __name__ == "__main__":
    app()

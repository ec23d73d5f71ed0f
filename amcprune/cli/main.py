"""Entry point: builds the Typer app from each stage's ``register`` and turns user errors into one line."""

from __future__ import annotations

import os
import signal
import sys
import warnings

import typer

from amcprune import __version__
from amcprune.cli import cost, data, demo, evaluate, export, prune, report, sweep, train
from amcprune.errors import AmcpruneError
from amcprune.utils.tempfiles import Terminated, terminate_now

app = typer.Typer(
    name="amcprune",
    help="Quantize, prune and score neural networks for automatic modulation classification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"amcprune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Quantize, prune and score neural networks for automatic modulation classification."""


# Brevitas warns on import that an optional CUDA kernel package is missing; it is irrelevant to every
# model here and would precede every command's output.
warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")


def _register_stages() -> None:
    for module in (data, train, evaluate, prune, export, cost, report, sweep, demo):
        module.register(app)


_register_stages()


def _sigterm_handler(main_pid: int):
    def handle(signum, frame):
        if os.getpid() != main_pid:
            # A forked worker (data synth): die as SIGTERM asks; the main process owns every temporary file.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        terminate_now()  # deletes this process's temporary files, then raises Terminated

    return handle


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print ``error: ...`` on stderr and return 2."""
    try:
        previous = signal.signal(signal.SIGTERM, _sigterm_handler(os.getpid()))
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return _run(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> int:
    try:
        app(args=argv, standalone_mode=False)
    except AmcpruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except typer.TyperException as exc:
        # Usage errors (unknown command, bad option) from Typer's bundled Click.
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        return getattr(exc, "exit_code", 2)
    return 0


def entry() -> None:
    sys.exit(main())

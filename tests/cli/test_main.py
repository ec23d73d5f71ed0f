import subprocess
import sys

from amcprune import __version__
from amcprune.cli.main import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_every_command_has_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("data", "train", "evaluate", "prune", "export", "cost"):
        assert command in out


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "amcprune", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr

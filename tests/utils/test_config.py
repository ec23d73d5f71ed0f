from typing import ClassVar

import pytest

from amcprune.errors import AmcpruneError
from amcprune.utils.config import YamlConfig


class _Cfg(YamlConfig):
    config_kind: ClassVar[str] = "demo config"
    yaml_section: ClassVar[str | None] = "demo"

    epochs: int = 3
    lr: float = 0.01


def test_from_yaml_reads_a_section_and_round_trips(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("demo:\n  epochs: 5\nother: 1\n")
    cfg = _Cfg.from_yaml(path)
    assert cfg.epochs == 5 and cfg.lr == 0.01
    path.write_text(cfg.to_yaml())
    assert _Cfg.from_yaml(path) == cfg


@pytest.mark.parametrize(
    "text, match",
    [
        ("epochs: [1\n", r"not valid YAML at line 2"),
        ("- a\n- b\n", r"expected a mapping of demo config options, found list"),
        ("epochs: many\n", r"c\.yaml: epochs: Input should be a valid integer"),
        ("epoch: 3\n", r"epoch: Extra inputs are not permitted"),
    ],
)
def test_bad_files_give_one_line(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(AmcpruneError, match=match) as info:
        _Cfg.from_yaml(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_bad_dict(tmp_path):
    with pytest.raises(AmcpruneError, match="no such demo config file"):
        _Cfg.from_yaml(tmp_path / "nope.yaml")
    with pytest.raises(AmcpruneError, match=r"^invalid demo config: lr: "):
        _Cfg.from_dict({"lr": "fast"})

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from amcprune.errors import AmcpruneError
from amcprune.utils.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, load_model_state, model_state, save_checkpoint


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, 3))


def test_masks_are_burned_in_and_reapplied(tmp_path):
    net = _net()
    prune.l1_unstructured(net[0], "weight", amount=0.5)
    x = torch.randn(2, 2, 8)
    expected = net(x)
    save_checkpoint(tmp_path / "c.pt", {"epoch": 3, **model_state(net)})

    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt["epoch"] == 3
    assert "0.weight" in ckpt["model"] and "0.weight_orig" not in ckpt["model"]
    assert int((ckpt["model"]["0.weight"] == 0).sum()) == 12

    fresh = _net()
    load_model_state(fresh, ckpt["model"], ckpt["masks"])
    assert torch.allclose(fresh(x), expected)
    # The mask is live again: training cannot revive pruned weights.
    opt = torch.optim.SGD(fresh.parameters(), lr=1.0)
    fresh(x).sum().backward()
    opt.step()
    assert int((fresh[0].weight == 0).sum()) == 12


def test_mismatching_architecture_names_layers(tmp_path):
    state = model_state(_net())["model"]
    other = nn.Sequential(nn.Conv1d(2, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 6, 3))
    with pytest.raises(AmcpruneError, match=r"0\.weight \(checkpoint \(4, 2, 3\), model \(5, 2, 3\)\)"):
        load_model_state(other, state)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/amcprune-evil-marker",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = "/tmp/amcprune-evil-marker"
    import os

    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil()}, path)
    with pytest.raises(AmcpruneError, match="refused to load") as info:
        load_checkpoint(path)
    assert not os.path.exists(marker)
    assert "system" in str(info.value)  # names what was refused
    assert "weights_only` set to `False" not in str(info.value)  # and never advises the unsafe retry


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_unreadable_files_give_one_line(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(AmcpruneError) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(AmcpruneError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(tmp_path, bad):
    state = {"0.weight": torch.ones(3, 2), "0.bias": torch.zeros(3), "n": torch.tensor(4)}
    state["0.bias"][1] = bad
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    wrapped = tmp_path / "ckpt.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "spec": {}, "model": state, "masks": {}}, wrapped)
    for path in (bare, wrapped):
        with pytest.raises(AmcpruneError, match=r"non-finite weights \(NaN or Inf\): 1 value\(s\) in 0\.bias"):
            load_checkpoint(path)

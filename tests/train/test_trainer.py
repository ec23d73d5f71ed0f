"""Trainer, in-memory data and evaluation on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from amcprune.data import radioml
from amcprune.errors import AmcpruneError
from amcprune.models import build_model
from amcprune.train.config import TrainConfig
from amcprune.train.data import InMemoryData
from amcprune.train.evaluate import EvalResult, evaluate_model, result_from_predictions, write_eval
from amcprune.train.trainer import Trainer, distillation_loss

from train_helpers import tiny_config, tiny_spec


def _data(path, spec, **kw):
    splits = radioml.load_splits(path, val_fraction=0.2)
    return InMemoryData.from_file(path, splits, spec=spec, device="cpu", quiet=True, **kw)


def test_config_yaml_roundtrip_and_errors(tmp_path):
    cfg = TrainConfig(lr=0.005, scheduler="plateau", patience=3)
    p = tmp_path / "train.yaml"
    p.write_text(cfg.to_yaml())
    assert TrainConfig.from_yaml(p) == cfg
    p.write_text("lr: 0.1\nbogus: 1\n")
    with pytest.raises(AmcpruneError, match="bogus"):
        TrainConfig.from_yaml(p)
    with pytest.raises(AmcpruneError, match="scheduler"):
        TrainConfig.from_dict({"scheduler": "step"})


def test_epoch_reduces_loss(tiny_h5):
    spec = tiny_spec(quantized=False)
    data = _data(tiny_h5, spec)
    assert not data.int8 and data.splits["train"].x.dtype == torch.float32
    torch.manual_seed(0)
    trainer = Trainer(build_model(spec), tiny_config(scheduler="none", batch_size=16), data)
    first = trainer.train_epoch()
    for _ in range(4):
        last = trainer.train_epoch()
    assert trainer.epoch == 5 and last["epoch"] == 5
    assert last["loss"] < 0.9 * first["loss"]
    assert set(first) >= {"loss", "acc", "samples_per_s", "lr"}
    assert first["samples"] == data.size("train")


def test_quantized_epoch_runs_with_int8_storage(tiny_h5):
    spec = tiny_spec()
    data = _data(tiny_h5, spec)
    assert data.int8 and data.splits["train"].x.dtype == torch.int8
    torch.manual_seed(0)
    trainer = Trainer(build_model(spec), tiny_config(scheduler="plateau"), data)
    r = trainer.train_epoch()
    assert np.isfinite(r["loss"]) and "val_acc" in r
    res = trainer.evaluate("test")
    assert res.n == data.size("test")


def test_int8_storage_gives_identical_outputs():
    spec = tiny_spec()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 1024, 2, generator=g) * 1.5  # some frames beyond the [-2, 2] clip range
    y = torch.randint(0, 4, (40,), generator=g)
    snr = torch.zeros(40, dtype=torch.long)
    q = InMemoryData.from_arrays({"test": (x, y, snr)}, spec=spec)
    f = InMemoryData.from_arrays({"test": (x, y, snr)}, spec=spec, store_int8=False)
    assert q.int8 and q.splits["test"].x.dtype == torch.int8 and not f.int8
    assert q.nbytes() * 4 == f.nbytes()
    torch.manual_seed(0)
    model = build_model(spec).eval()
    with torch.no_grad():
        out_q = torch.cat([model(xb) for xb, _, _ in q.batches("test", 16)])
        out_f = torch.cat([model(xb) for xb, _, _ in f.batches("test", 16)])
    assert torch.equal(out_q, out_f)


def test_batches_are_seeded_and_cover_the_split(tiny_h5):
    data = _data(tiny_h5, tiny_spec())
    n = data.size("train")
    ys = [yb for _, yb, _ in data.batches("train", 7, shuffle=True, generator=torch.Generator().manual_seed(3))]
    ys2 = [yb for _, yb, _ in data.batches("train", 7, shuffle=True, generator=torch.Generator().manual_seed(3))]
    assert all(torch.equal(a, b) for a, b in zip(ys, ys2))
    assert sum(len(b) for b in ys) == n
    assert sorted(torch.cat(ys).tolist()) == sorted(data.splits["train"].y.tolist())


def test_reset_optimizer_binds_new_parameters(tiny_h5):
    spec = tiny_spec()
    data = _data(tiny_h5, spec)
    torch.manual_seed(0)
    model = build_model(spec)
    trainer = Trainer(model, tiny_config(epochs=1), data)
    # A parameter replaced by a new object (as when a rewind point is loaded into a rebuilt layer).
    model[30].weight = nn.Parameter(model[30].weight.detach().clone())
    before = model[30].weight.detach().clone()
    trainer.train_epoch()
    assert torch.equal(model[30].weight, before), "the stale optimizer cannot know the new parameter"
    trainer.reset_optimizer()
    assert any(p is model[30].weight for g in trainer.optimizer.param_groups for p in g["params"])
    trainer.train_epoch()
    assert not torch.equal(model[30].weight, before)


def test_trains_pruned_model_and_keeps_zeros(tiny_h5):
    spec = tiny_spec()
    data = _data(tiny_h5, spec)
    torch.manual_seed(0)
    model = build_model(spec)
    conv = model[5]
    prune.l1_unstructured(conv, "weight", amount=0.5)  # weight -> weight_orig * weight_mask
    trainer = Trainer(model, tiny_config(epochs=1), data)
    names = {n for n, _ in model.named_parameters()}
    assert "5.weight_orig" in names
    before = conv.weight_orig.detach().clone()
    trainer.train_epoch()
    assert not torch.equal(conv.weight_orig, before)
    assert torch.all(conv.weight[conv.weight_mask == 0] == 0)


def test_state_dict_roundtrip_is_weights_only(tiny_h5, tmp_path):
    spec = tiny_spec()
    data = _data(tiny_h5, spec)
    torch.manual_seed(0)
    trainer = Trainer(build_model(spec), tiny_config(), data)
    trainer.train_epoch()
    path = tmp_path / "state.pt"
    torch.save(trainer.state_dict(), path)
    state = torch.load(path, weights_only=True)
    other = Trainer(build_model(spec), tiny_config(), data)
    other.load_state_dict(state)
    assert other.epoch == 1
    assert torch.equal(other.generator.get_state(), trainer.generator.get_state())
    assert other.scheduler.state_dict()["last_epoch"] == trainer.scheduler.state_dict()["last_epoch"]


def test_eval_result_is_consistent(tiny_h5, tmp_path):
    spec = tiny_spec(quantized=False)
    data = _data(tiny_h5, spec)
    torch.manual_seed(0)
    model = build_model(spec)
    res = evaluate_model(model, data, split="test", confusion_snrs=[0])
    n_per = res.n_per_snr
    acc = res.acc_per_snr
    weighted = sum(acc[s] * n for s, n in zip(res.snrs, n_per)) / sum(n_per)
    assert res.n == data.size("test") == sum(n_per)
    assert weighted == pytest.approx(res.accuracy)
    assert res.confusion().sum() == res.n
    assert np.trace(res.confusion()) == res.correct
    acs = res.acc_class_snr
    assert acs.shape == (4, len(res.snrs))
    # Frames given directly (file layout) give the same result.
    x, y, s = radioml.read_frames(tiny_h5, data.splits["test"].indices, quiet=True)
    res2 = evaluate_model(model, x, y, s, class_names=data.class_names, confusion_snrs=[0])
    assert np.array_equal(res2.counts, res.counts)
    js = res.to_json()
    assert js["confusion_by_snr"].keys() == {"0"}
    assert EvalResult.from_json(js).accuracy == res.accuracy
    written = write_eval(res, tmp_path / "eval")
    assert (tmp_path / "eval" / "eval.json").is_file()
    for key in ("acc_vs_snr", "acc_class_snr", "confusion", "confusion_snr0"):
        assert written[key].read_bytes()[:4] == b"\x89PNG"
    assert "accuracy" in res.table()


def test_result_from_predictions_counts():
    preds = [0, 1, 1, 2, 0, 0]
    labels = [0, 1, 2, 2, 1, 0]
    snrs = [-2, -2, 4, 4, 4, -2]
    r = result_from_predictions(preds, labels, snrs, ["a", "b", "c"])
    assert r.snrs == [-2, 4]
    assert r.acc_per_snr == {-2: 1.0, 4: pytest.approx(1 / 3)}
    assert r.accuracy == pytest.approx(4 / 6)
    assert r.confusion(4).tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 1]]


def test_finetune_schedule_decays_per_batch_to_zero_and_resumes(tiny_h5, tmp_path):
    spec = tiny_spec()
    data = _data(tiny_h5, spec)
    torch.manual_seed(0)
    trainer = Trainer(build_model(spec), tiny_config(), data)
    trainer.start_finetune(lr=0.004, epochs=2)
    first = trainer.train_epoch()
    # Half-way through a two-epoch cosine the rate is half the start rate, stepped per batch.
    assert first["lr"] == pytest.approx(0.004) and first["lr_end"] == pytest.approx(0.002)
    path = tmp_path / "state.pt"
    torch.save({"trainer": trainer.state_dict(), "model": trainer.model.state_dict()}, path)
    second = trainer.train_epoch()
    assert second["lr"] == pytest.approx(0.002) and second["lr_end"] == pytest.approx(0.0, abs=1e-12)
    assert trainer.train_epoch()["lr_end"] == pytest.approx(0.0, abs=1e-12)  # held at zero past the end

    # A trainer rebuilt from the saved state (as after a kill) continues the same schedule to the same weights.
    saved = torch.load(path, weights_only=True)
    other = Trainer(build_model(spec), tiny_config(), data)
    other.model.load_state_dict(saved["model"])
    other.load_state_dict(saved["trainer"])
    again = other.train_epoch()
    assert again["lr"] == pytest.approx(second["lr"]) and again["loss"] == pytest.approx(second["loss"])
    # reset_optimizer (a rewind) restarts the fine-tuning schedule rather than the train config's.
    other.reset_optimizer()
    assert other.lr == pytest.approx(0.004) and other.finetune == {"lr": 0.004, "epochs": 2, "schedule": "cosine"}
    with pytest.raises(AmcpruneError, match="at least one epoch"):
        other.start_finetune(lr=0.01, epochs=0)


def test_training_stops_at_the_first_non_finite_loss(tiny_h5):
    spec = tiny_spec()
    data = _data(tiny_h5, spec)
    torch.manual_seed(0)
    trainer = Trainer(build_model(spec), tiny_config(), data)
    trainer.train_epoch()
    with torch.no_grad():
        trainer.model[30].weight.fill_(float("nan"))  # a weight gone bad: every logit is NaN
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    with pytest.raises(AmcpruneError, match="training diverged: the loss is nan at batch 1 of epoch 2"):
        trainer.train_epoch()
    # No optimizer step was taken with the bad loss: every parameter is as it was.
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before if not torch.isnan(before[k]).any())
    assert trainer.epoch == 1  # the failed epoch did not count


def test_distillation_loss_is_cross_entropy_plus_the_softened_teacher_term():
    torch.manual_seed(0)
    logits, teacher = torch.randn(8, 5, requires_grad=True), torch.randn(8, 5)
    labels = torch.randint(0, 5, (8,))
    ce = nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(distillation_loss(logits, labels, teacher, 4.0, 0.0), ce)
    # A student that already matches its teacher pays only the hard term.
    assert torch.allclose(distillation_loss(logits, labels, logits.detach(), 4.0, 0.5), 0.5 * ce)
    # The soft term pulls the student's softened distribution toward the teacher's.
    distillation_loss(logits, labels, teacher, 2.0, 1.0).backward()
    stepped = logits.detach() - 0.5 * logits.grad
    kl = lambda s: nn.functional.kl_div(s.log_softmax(1), teacher.log_softmax(1), log_target=True,  # noqa: E731
                                        reduction="batchmean")
    assert kl(stepped / 2.0) < kl(logits.detach() / 2.0)


def test_a_teacher_changes_the_training_loss_and_none_restores_it(tiny_h5):
    spec = tiny_spec()
    data = _data(tiny_h5, spec)

    def epoch_loss(teacher_weight: float | None) -> float:
        torch.manual_seed(0)
        trainer = Trainer(build_model(spec), tiny_config(scheduler="none", batch_size=16), data)
        if teacher_weight is not None:
            teacher = torch.randn(data.size("train"), spec.num_classes, generator=torch.Generator().manual_seed(1))
            trainer.set_teacher(teacher, temperature=4.0, weight=teacher_weight)
        return trainer.train_epoch()["loss"]

    plain = epoch_loss(None)
    assert epoch_loss(0.0) == plain  # weight 0 is no teacher at all
    assert epoch_loss(0.7) != plain
    trainer = Trainer(build_model(spec), tiny_config(), data)
    with pytest.raises(AmcpruneError, match="teacher outputs for 3 frames"):
        trainer.set_teacher(torch.zeros(3, spec.num_classes), 4.0, 0.5)

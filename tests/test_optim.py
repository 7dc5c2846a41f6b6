"""MuonWithAdamW: the split (Muon on linear weights, a tied head and everything else on AdamW), one step equal to
the two torch optimizers stepped apart, the Trainer's schedule scaling both, an exact resume, one-line errors."""

import pytest
import torch
from torch import nn

import amla
from amla.toolkit.optim import MuonWithAdamW, muon_split
from amla.toolkit.train import TrainConfig, Trainer
from amla.transformers.gpt import GPT, GPTConfig


def _gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0))


def _tokens(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 11, (n, 8), generator=g)
    return x, x.roll(-1, dims=1)


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())


def test_the_split_gives_muon_the_linear_weights_and_adamw_the_tied_head_embeddings_norms_biases():
    model = _gpt()
    matrices, rest = muon_split(model)
    names = {id(p): n for n, p in model.named_parameters()}
    linear = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert {names[id(p)] for p in matrices} == {f"{n}.weight" for n in linear if not n.startswith("lm_head")}
    assert model.lm_head.weight is model.tok_emb.weight and any(p is model.tok_emb.weight for p in rest)
    assert all(p.dim() == 2 for p in matrices) and {id(p) for p in matrices}.isdisjoint({id(p) for p in rest})
    assert len(matrices) + len(rest) == len(list(model.parameters()))  # every parameter once


def test_one_step_is_torch_muon_and_adamw_stepped_apart():
    a, b = _gpt(), _gpt()
    for model in (a, b):
        _loss(model, _tokens()).backward()
    MuonWithAdamW(a, lr=1e-2, muon_lr=0.05, weight_decay=0.1).step()
    matrices, rest = muon_split(b)
    torch.optim.Muon(matrices, lr=0.05, weight_decay=0.1).step()
    torch.optim.AdamW([{"params": [p for p in rest if p.dim() >= 2], "weight_decay": 0.1},
                       {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}], lr=1e-2, betas=(0.9, 0.99)).step()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.blocks[0].attn.qkv.weight, _gpt().blocks[0].attn.qkv.weight)  # it did move


def test_the_trainer_schedule_scales_both_and_logs_the_adamw_rate():
    x, y = _tokens()
    model = _gpt()
    opt = MuonWithAdamW(model, lr=1e-3, muon_lr=0.02)
    cfg = TrainConfig(max_steps=10, batch_size=16, lr=1e-3, warmup_steps=4, progress=False)
    trainer = Trainer(model, (x, y), cfg, optimizer=opt, device="cpu")
    trainer.fit()
    lrs = [r["lr"] for r in trainer.history.train]
    assert lrs[:5] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    assert opt.muon.param_groups[0]["lr"] == pytest.approx(opt.adamw.param_groups[0]["lr"] * 20)
    assert opt.param_groups[0] is opt.adamw.param_groups[0]
    assert trainer.history.train[-1]["loss"] < trainer.history.train[0]["loss"]


def test_a_run_with_muon_resumes_exactly(tmp_path):
    x, y = _tokens()
    cfg = dict(max_steps=12, batch_size=16, lr=3e-3, warmup_steps=2, progress=False)

    def trainer(seed, **kw):
        model = _gpt(seed)
        return Trainer(model, (x, y), TrainConfig(**cfg, **kw), optimizer=MuonWithAdamW(model, lr=3e-3), device="cpu")

    whole = trainer(0)
    whole.fit()
    path = str(tmp_path / "muon.pt")

    class Crash(amla.Callback):
        def on_step_end(self, t, record):
            t.should_stop = t.step == 5

    first = trainer(0, checkpoint_path=path)
    first.callbacks.append(Crash())
    first.fit()
    resumed = trainer(3, checkpoint_path=path).load(path)
    assert resumed.step == 5
    resumed.fit()
    for p, q in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    assert resumed.optimizer.param_groups[-1] is resumed.optimizer.muon.param_groups[0]  # still shared after loading


def test_bad_input_is_one_line():
    with pytest.raises(ValueError, match=r"^MuonWithAdamW: the model has no nn.Linear weight for Muon; use AdamW alone$"):
        MuonWithAdamW(nn.Sequential(nn.Embedding(4, 3), nn.LayerNorm(3)), lr=1e-3)
    with pytest.raises(ValueError, match=r"^MuonWithAdamW: lr and muon_lr must be > 0, got lr=0.001, muon_lr=0$"):
        MuonWithAdamW(_gpt(), lr=1e-3, muon_lr=0)
    opt = MuonWithAdamW(_gpt(), lr=1e-3)
    with pytest.raises(KeyError, match="expected keys 'adamw' and 'muon', got \\['param_groups', 'state'\\]"):
        opt.load_state_dict(torch.optim.AdamW(_gpt().parameters()).state_dict())

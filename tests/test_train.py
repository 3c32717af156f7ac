import pytest
import torch
from torch import nn

from mtl_helpers.conflict import set_grad
from mtl_helpers.data import Split
from mtl_helpers.models import ConvTrunk, HardSharing, make_head, mlp
from mtl_helpers.tasks import Task
from mtl_helpers.train import _check_finite, evaluate, fit, make_optimizer, selection_score, task_losses, train_step
from mtl_helpers.utils import seed_everything

TASKS = [Task("cls", "classification", 3), Task("reg", "regression")]


def toy_split(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    return Split(x, {"cls": (x[:, 0] > 0).long() + (x[:, 1] > 0).long(), "reg": x[:, 2] * 2.0})


def toy_model():
    return HardSharing(mlp(5, [16]), {t.name: make_head(16, t) for t in TASKS})


def test_fit_learns_and_records_history():
    seed_everything(0)
    model, split = toy_model(), toy_split(256)
    history = fit(model, split, TASKS, epochs=30, lr=1e-2, batch_size=64, val=split, verbose=False)
    frame = history.frame()
    assert frame["train_loss/reg"].iloc[-1] < 0.5 * frame["train_loss/reg"].iloc[0]
    assert frame["val/cls"].iloc[-1] > 0.8
    assert history.seconds > 0


def test_fit_is_repeatable_for_a_seed():
    results = []
    for _ in range(2):
        seed_everything(1)
        model = toy_model()
        fit(model, toy_split(), TASKS, epochs=2, verbose=False, seed=1)
        results.append(evaluate(model, toy_split(seed=5), TASKS))
    assert results[0] == results[1]


def test_fit_stops_on_nan_loss_naming_task_and_step():
    split = toy_split()
    split.y["reg"][3] = float("nan")
    with pytest.raises(ValueError, match=r"Task 'reg' has a non-finite loss .* step 0"):
        fit(toy_model(), split, TASKS, epochs=1, batch_size=64, verbose=False)


def test_finite_check_names_the_bad_task_and_lets_a_finite_overflowing_sum_pass():
    _check_finite(torch.tensor([3e38, 3e38]), TASKS, epoch=1, step=2)  # finite, though their sum is inf
    with pytest.raises(ValueError, match=r"Task 'cls' has a non-finite loss \(inf\) at epoch 1, step 2"):
        _check_finite(torch.tensor([float("inf"), 1.0]), TASKS, epoch=1, step=2)


def test_fit_rejects_unknown_task_empty_tasks_and_both_hooks():
    with pytest.raises(ValueError, match="Unknown task 'age'"):
        fit(toy_model(), toy_split(), [Task("age", "regression")], verbose=False)
    with pytest.raises(ValueError, match="empty"):
        fit(toy_model(), toy_split(), [], verbose=False)
    with pytest.raises(ValueError, match="not both"):
        fit(toy_model(), toy_split(), TASKS, weighting=lambda losses: losses.sum(), gradient_method=lambda g: g.sum(0))


def test_head_that_does_not_fit_its_targets_raises():
    model = HardSharing(mlp(5, [8]), {"cls": make_head(8, Task("cls", "classification", 2)),
                                      "reg": make_head(8, TASKS[1])})
    with pytest.raises(ValueError, match="give the head 3 outputs"):
        fit(model, toy_split(), TASKS, epochs=1, verbose=False)


def test_weighting_hook_receives_losses_and_changes_training():
    seen = []

    def only_cls(losses):
        seen.append(losses.shape)
        return losses[0]

    seed_everything(0)
    model = toy_model()
    before = [p.clone() for p in model.heads["reg"].parameters()]
    fit(model, toy_split(), TASKS, epochs=1, weighting=only_cls, verbose=False)
    assert seen and seen[0] == (2,)
    assert all(torch.equal(a, b) for a, b in zip(before, model.heads["reg"].parameters()))


def test_mean_gradient_method_equals_half_the_summed_loss_step():
    """With G's mean as the direction, shared params move as if trained on (L1 + L2) / 2."""
    def one_step(**kwargs):
        seed_everything(0)
        model = toy_model()
        fit(model, toy_split(32), TASKS, epochs=1, batch_size=32, lr=0.1, verbose=False, **kwargs)
        return torch.cat([p.detach().flatten() for p in model.trunk.parameters()])

    via_grads = one_step(gradient_method=lambda g: g.mean(0))
    via_loss = one_step(weighting=lambda losses: losses.mean())
    # Adam's first step is sign-like: equal directions give equal updates
    assert torch.allclose(via_grads, via_loss, atol=1e-5)


def test_sum_direction_trains_a_conv_net_as_the_summed_loss_does():
    """Gradients written by hand into a channels-last conv trunk (and the heads) must reach
    Adam's fused kernel in the parameters' own layout: then the sum direction is the summed loss."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 8, 8, generator=g)
    split = Split(x, {"cls": (x.mean((1, 2, 3)) > 0).long(), "reg": x[:, 0, 0, 0]})

    def trained(**kwargs):
        seed_everything(0)
        model = HardSharing(ConvTrunk(image_size=8, out_dim=16), {t.name: make_head(16, t) for t in TASKS})
        fit(model, split, TASKS, epochs=3, batch_size=16, lr=1e-2, verbose=False, **kwargs)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert not ConvTrunk().features[3].weight.is_contiguous()  # the layout this test is about
    assert torch.allclose(trained(gradient_method=lambda grads: grads.sum(0)), trained(), atol=1e-5)


def test_representation_gradients_run_and_train():
    seen = []
    seed_everything(0)
    model = toy_model()
    fit(model, toy_split(), TASKS, epochs=1, gradient_method=lambda g: g.sum(0), gradients_wrt="representation",
        on_step=lambda info: seen.append(info.grads.shape), verbose=False)
    assert seen[0] == (2, 64 * 16)  # gradients w.r.t. z of the whole batch
    with pytest.raises(ValueError, match="gradients_wrt"):
        fit(model, toy_split(), TASKS, gradient_method=lambda g: g.sum(0), gradients_wrt="weights", verbose=False)


class EncodeDecodeOnly(nn.Module):
    """The same network behind encode/decode only (no ``heads``): the T-pass representation path."""

    def __init__(self, inner: HardSharing) -> None:
        super().__init__()
        self.inner = inner

    def encode(self, x):
        return self.inner.encode(x)

    def decode(self, z):
        return self.inner.decode(z)

    def forward(self, x):
        return self.inner(x)

    def shared_parameters(self):
        return self.inner.shared_parameters()

    def task_parameters(self):
        return self.inner.task_parameters()


@pytest.mark.parametrize("masked", [False, True])
def test_representation_step_with_head_copies_equals_one_head_pass_per_task(masked):
    split = toy_split(128)
    if masked:
        split = split.with_label_fraction("reg", 0.1)
    trained, graphs = [], []
    for wrap in (lambda m: m, EncodeDecodeOnly):
        seed_everything(0)
        model = wrap(toy_model())
        fit(model, split, TASKS, epochs=3, batch_size=32, lr=1e-2, gradient_method="mgda",
            gradients_wrt="representation", on_step=lambda info: graphs.append(info.grads), verbose=False)
        trained.append([p.detach() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*trained, strict=True))
    n = len(graphs) // 2
    assert all(torch.equal(a, b) for a, b in zip(graphs[:n], graphs[n:], strict=True))


def test_masked_labels_are_ignored():
    split = toy_split()
    masked = split.with_label_fraction("reg", 0.25)
    masked.y["reg"][~masked.masks["reg"]] = 1e6  # garbage where there is no label
    losses = task_losses(toy_model()(masked.x), masked, TASKS)
    assert torch.isfinite(losses).all() and losses[1] < 1e3


def test_penalty_hook_is_added():
    def trunk_norm(penalty):
        seed_everything(0)
        model = toy_model()
        fit(model, toy_split(), TASKS, epochs=10, lr=5e-2, penalty=penalty, verbose=False)
        return sum((p ** 2).sum() for p in model.trunk.parameters()).item()

    shrink = lambda m: 100.0 * sum((p ** 2).sum() for p in m.trunk.parameters())  # noqa: E731
    assert trunk_norm(shrink) < 0.5 * trunk_norm(None)


def test_restore_best_keeps_the_best_validation_epoch():
    seed_everything(0)
    train, val = toy_split(64, seed=0), toy_split(64, seed=7)
    scores = []
    model = toy_model()
    history = fit(model, train, TASKS, epochs=12, lr=0.2, batch_size=16, val=val, restore_best=True,
                  score=lambda m: m["cls"], on_epoch=lambda e, rec: scores.append(rec["val/cls"]), verbose=False)
    best = max(range(12), key=lambda i: scores[i]) + 1
    assert history.best_epoch == best
    assert evaluate(model, val, TASKS)["cls"] == pytest.approx(scores[best - 1])
    with pytest.raises(ValueError, match="pass val"):
        fit(toy_model(), train, TASKS, restore_best=True, verbose=False)


def test_val_every_records_some_epochs_and_the_last():
    history = fit(toy_model(), toy_split(), TASKS, epochs=5, val=toy_split(seed=2), val_every=2, verbose=False)
    assert [("val/cls" in r) for r in history.records] == [False, True, False, True, True]
    assert history.best_epoch == 5  # without restore_best the model keeps its last epoch


def test_methods_by_registry_name():
    seed_everything(0)
    fit(toy_model(), toy_split(), TASKS, epochs=1, weighting="uw", verbose=False)
    fit(toy_model(), toy_split(), TASKS, epochs=1, gradient_method="mgda", verbose=False)
    with pytest.raises(ValueError, match="Unknown gradient method"):
        fit(toy_model(), toy_split(), TASKS, gradient_method="pcgard", verbose=False)
    with pytest.raises(ValueError, match="Unknown loss weighting"):
        fit(toy_model(), toy_split(), TASKS, weighting="uncertainty", verbose=False)


def test_train_step_is_one_optimisation_step():
    seed_everything(0)
    model = toy_model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses, grads = train_step(model, toy_split(8), TASKS, optimizer)
    assert losses.shape == (2,) and not losses.requires_grad and grads is None
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    _, grads = train_step(model, toy_split(8), TASKS, optimizer, gradient_method=lambda g: g.sum(0))
    assert grads.shape[0] == 2


def test_selection_score_negates_lower_is_better_metrics():
    assert selection_score({"cls": 0.8, "reg": 2.0}, TASKS) == pytest.approx((0.8 - 2.0) / 2)


def test_set_grad_keeps_the_parameter_layout_and_rejects_a_wrong_shape():
    weight = ConvTrunk().features[3].weight
    set_grad(weight, torch.ones(weight.shape))  # a contiguous gradient for a channels-last weight
    assert weight.grad.stride() == weight.stride() and torch.equal(weight.grad, torch.ones(weight.shape))
    with pytest.raises(ValueError, match="cannot be the .grad"):
        set_grad(weight, torch.ones(weight.numel()))


@pytest.mark.parametrize("wrt", ["parameters", "representation"])
def test_a_gradient_method_needs_a_model_with_shared_and_task_parameters(wrt):
    class NoSplit(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = toy_model()

        def forward(self, x):
            return self.inner(x)

    with pytest.raises(ValueError, match="shared_parameters\\(\\) and task_parameters\\(\\)"):
        fit(NoSplit(), toy_split(), TASKS, gradient_method="mgda", gradients_wrt=wrt, verbose=False)


def test_representation_step_names_a_task_the_model_has_no_head_for():
    model = HardSharing(mlp(5, [16]), {"cls": make_head(16, TASKS[0])})  # no head for "reg"
    with pytest.raises(ValueError, match="no output for task 'reg'"):
        fit(model, toy_split(), TASKS, gradient_method="mgda", gradients_wrt="representation", verbose=False)


def test_make_optimizer_is_fits_adam_fused_where_the_kernel_can_run():
    """The benchmark times steps with the optimizer fit trains with: Adam, fused on CPU floats."""
    layer = torch.nn.Linear(3, 2)
    optimizer = make_optimizer(layer.parameters(), lr=0.01, weight_decay=0.1)
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["fused"] is True
    assert (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (0.01, 0.1)
    assert len(optimizer.param_groups[0]["params"]) == 2  # a generator is listed once, not exhausted
    on_meta = torch.nn.Linear(3, 2, device="meta")
    assert not make_optimizer(on_meta.parameters()).defaults["fused"]

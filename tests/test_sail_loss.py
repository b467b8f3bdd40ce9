"""SAIL loss: hand-computed values, the DPO special cases, detached weights, and gradients only where LoRA sits."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from attrib.surgery.loss import dpo_loss, sail_loss, token_logps  # noqa: E402


def _case(seed: int = 0, b: int = 3, t: int = 5):
    g = torch.Generator().manual_seed(seed)
    pc, pr, rc, rr = (-torch.rand(b, t, generator=g) * 3 for _ in range(4))
    wc, wr = torch.rand(b, t, generator=g), torch.rand(b, t, generator=g)
    mc = torch.ones(b, t)
    mc[:, :2] = 0  # prompt tokens
    mr = torch.ones(b, t)
    mr[:, :1] = 0
    mr[0, -1] = 0  # padding
    return pc, pr, rc, rr, wc, wr, mc, mr


def test_hand_computed_single_pair():
    # chosen: two response tokens, Δ = (0.5, -0.1), w = (1, 0); rejected: one token, Δ = 0.4, w = 0.5
    pc = torch.tensor([[-1.0, -0.5, -1.1]])
    rc = torch.tensor([[-1.0, -1.0, -1.0]])
    pr = torch.tensor([[-2.0, -0.6]])
    rr = torch.tensor([[-2.0, -1.0]])
    wc = torch.tensor([[0.3, 1.0, 0.0]])
    wr = torch.tensor([[0.9, 0.5]])
    mc = torch.tensor([[0.0, 1.0, 1.0]])
    mr = torch.tensor([[0.0, 1.0]])
    beta, alpha = 0.1, 0.5
    chosen = beta * (1 + alpha * 1.0) * 0.5 + beta * (1 + alpha * 0.0) * (-0.1)  # 0.075 - 0.01
    rejected = beta * (1 - alpha * 0.5) * 0.4  # 0.03
    expected = -math.log(1 / (1 + math.exp(-(chosen - rejected))))
    got = sail_loss(pc, pr, rc, rr, wc, wr, mc, mr, beta=beta, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(-math.log(1 / (1 + math.exp(-0.035))))


@pytest.mark.parametrize("mode", ["alpha0", "w0"])
def test_equals_dpo_when_unweighted(mode):
    pc, pr, rc, rr, wc, wr, mc, mr = _case(1)
    if mode == "alpha0":
        got = sail_loss(pc, pr, rc, rr, wc, wr, mc, mr, beta=0.2, alpha=0.0)
    else:
        got = sail_loss(pc, pr, rc, rr, torch.zeros_like(wc), torch.zeros_like(wr), mc, mr, beta=0.2, alpha=0.7)
    # independent DPO: sequence log-probs summed over response tokens, then the textbook formula
    seq = lambda lp, m: (lp * m).sum(-1)  # noqa: E731
    logits = (seq(pc, mc) - seq(rc, mc)) - (seq(pr, mr) - seq(rr, mr))
    textbook = torch.stack([torch.log1p(torch.exp(-0.2 * x)) for x in logits]).mean()
    assert got.item() == pytest.approx(textbook.item(), rel=1e-6)
    assert got.item() == pytest.approx(dpo_loss(seq(pc, mc), seq(pr, mr), seq(rc, mc), seq(rr, mr), beta=0.2).item(),
                                       rel=1e-6)


def test_uniform_weights_are_dpo_with_asymmetric_betas():
    pc, pr, rc, rr, wc, wr, mc, mr = _case(2)
    c = 1.0
    got = sail_loss(pc, pr, rc, rr, torch.full_like(wc, c), torch.full_like(wr, c), mc, mr, beta=0.1, alpha=0.5)
    dc = ((pc - rc) * mc).sum(-1)
    dr = ((pr - rr) * mr).sum(-1)
    expected = -torch.nn.functional.logsigmoid(0.1 * 1.5 * dc - 0.1 * 0.5 * dr).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_weights_and_reference_are_detached():
    pc, pr, rc, rr, wc, wr, mc, mr = _case(3)
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    wc.requires_grad_(True)
    wr.requires_grad_(True)
    rc.requires_grad_(True)
    loss = sail_loss(pc, pr, rc, rr, wc, wr, mc, mr)
    loss.backward()
    assert wc.grad is None and wr.grad is None and rc.grad is None
    assert pc.grad is not None and pc.grad.abs().sum() > 0
    # masked (prompt/padding) positions get no gradient
    assert torch.all(pc.grad[:, :2] == 0) and pr.grad[0, -1] == 0
    # gradient on a chosen token scales with (1 + alpha * w): compare two tokens of row 1
    g = pc.grad[1, 2:] / (1 + 0.5 * wc.detach()[1, 2:])
    assert torch.allclose(g, g[0].expand_as(g), rtol=1e-5)


def test_shape_mismatch_and_reduction():
    pc, pr, rc, rr, wc, wr, mc, mr = _case(4)
    with pytest.raises(ValueError, match="chosen_weights"):
        sail_loss(pc, pr, rc, rr, wc[:, :-1], wr, mc, mr)
    none = sail_loss(pc, pr, rc, rr, wc, wr, mc, mr, reduction="none")
    assert none.shape == (3,)
    assert sail_loss(pc, pr, rc, rr, wc, wr, mc, mr, reduction="sum").item() == pytest.approx(none.sum().item())


def test_token_logps_alignment():
    # logits that put all mass on token (t+1) % V at position t: the log-prob of that token is ~0
    v, t = 7, 5
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    logits = torch.full((1, t, v), -30.0)
    for i in range(t):
        logits[0, i, (ids[0, i] + 1) % v] = 30.0
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    lp = token_logps(logits, ids, mask)
    assert lp[0, :2].tolist() == [0.0, 0.0]
    assert torch.all(lp[0, 2:] > -1e-6)
    ids_bad = torch.tensor([[1, 2, 6, 4, 5]])  # token 2 is not the predicted one
    assert token_logps(logits, ids_bad, mask)[0, 2] < -50


def test_dpo_loss_refuses_per_token_and_mismatched_input():
    """[B, T] input was silently averaged over tokens; [3] vs [4] gave a raw broadcasting error."""
    from attrib.errors import InputError

    a, b = torch.zeros(3), torch.zeros(3)
    assert dpo_loss(a, b, a, b).item() == pytest.approx(math.log(2))
    with pytest.raises(InputError, match=r"policy_chosen_logps: must be sequence log-probs \[batch\]") as err:
        dpo_loss(torch.zeros(3, 5), torch.zeros(3, 5), torch.zeros(3, 5), torch.zeros(3, 5))
    assert err.value.field == "policy_chosen_logps"
    with pytest.raises(InputError, match=r"ref_rejected_logps: has shape \(4,\), expected \(3,\)"):
        dpo_loss(a, b, a, torch.zeros(4))
    with pytest.raises(InputError, match="ref_chosen_logps: must be a torch.Tensor, got list"):
        dpo_loss(a, b, [0.0, 0.0, 0.0], b)
    with pytest.raises(InputError, match="reduction"):
        dpo_loss(a, b, a, b, reduction="avg")


def test_sail_loss_names_a_non_tensor_argument():
    """A list of weights gave AttributeError ('list' object has no attribute 'shape')."""
    from attrib.errors import InputError

    pc, pr, rc, rr, wc, wr, mc, mr = _case(5)
    with pytest.raises(InputError, match="chosen_weights: must be a torch.Tensor, got list") as err:
        sail_loss(pc, pr, rc, rr, wc.tolist(), wr, mc, mr)
    assert err.value.field == "chosen_weights"
    with pytest.raises(InputError, match="policy_rejected_logps: chosen and rejected batches differ"):
        sail_loss(pc, pr[:2], rc, rr[:2], wc, wr[:2], mc, mr[:2])
    with pytest.raises(ValueError, match="chosen_weights"):  # still a ValueError, as before
        sail_loss(pc, pr, rc, rr, wc[:, :-1], wr, mc, mr)


@pytest.mark.parametrize(("side", "value"), [("chosen_weights", 1.5), ("rejected_weights", 3.0),
                                             ("rejected_weights", -0.2), ("chosen_weights", float("nan"))])
def test_weights_outside_unit_interval_are_refused(side, value):
    """With α·w > 1 the rejected factor β(1 − α·w) is negative: the loss then *rewards* raising the rejected answer.
    Before, sail_loss took such weights (e.g. raw attention scores) silently."""
    from attrib.errors import InputError

    pc, pr, rc, rr, wc, wr, mc, mr = _case(6)
    w = {"chosen_weights": wc.clone(), "rejected_weights": wr.clone()}
    mask = mc if side == "chosen_weights" else mr
    w[side][1, -2] = value  # a response token of row 1 on both sides
    assert mask[1, -2] == 1
    with pytest.raises(InputError, match=rf"^{side}: must lie in \[0, 1\] on response tokens") as err:
        sail_loss(pc, pr, rc, rr, w["chosen_weights"], w["rejected_weights"], mc, mr)
    assert err.value.field == side and isinstance(err.value, ValueError)


def test_weights_off_the_response_are_not_checked():
    """Prompt and padding positions are masked out of the loss, so whatever they hold is not refused."""
    pc, pr, rc, rr, wc, wr, mc, mr = _case(7)
    wc[:, :2] = 5.0  # prompt tokens (mc is 0 there)
    wr[0, -1] = -1.0  # padding (mr is 0 there)
    base = sail_loss(pc, pr, rc, rr, wc.clamp(0, 1), wr.clamp(0, 1), mc, mr)
    assert sail_loss(pc, pr, rc, rr, wc, wr, mc, mr).item() == pytest.approx(base.item())


@pytest.mark.parametrize(("kw", "field"), [({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha"),
                                           ({"alpha": float("nan")}, "alpha"), ({"beta": 0.0}, "beta"),
                                           ({"beta": -0.1}, "beta"), ({"beta": True}, "beta")])
def test_alpha_and_beta_out_of_range_are_refused(kw, field):
    """α > 1 gives a rejected token of weight w > 1/α a negative factor β(1 − α·w); β ≤ 0 flattens or inverts DPO.
    Before, both trained silently in the wrong direction."""
    from attrib.errors import InputError

    pc, pr, rc, rr, wc, wr, mc, mr = _case(8)
    wr[:] = 0.9  # with alpha 1.5 the rejected factor would be 0.1 * (1 - 1.35) < 0
    with pytest.raises(InputError, match=rf"^{field}: must ") as err:
        sail_loss(pc, pr, rc, rr, wc, wr, mc, mr, **kw)
    assert err.value.field == field


def test_alpha_bounds_are_allowed():
    pc, pr, rc, rr, wc, wr, mc, mr = _case(9)
    for alpha in (0, 0.0, 1, 1.0):
        assert torch.isfinite(sail_loss(pc, pr, rc, rr, wc, wr, mc, mr, alpha=alpha))


@pytest.mark.parametrize(("change", "says"), [
    (lambda m: m * 0, "chosen_mask: row 0 has no response token"),  # was a constant log 2, no gradient
    (lambda m: m * 2, "chosen_mask: must hold only 0 and 1 (1 on response tokens), found 2"),  # rescaled β
    (lambda m: m * 0.5, "chosen_mask: must hold only 0 and 1 (1 on response tokens), found 0.5"),
])
def test_masks_are_zero_one_with_a_response_token_per_row(change, says):
    from attrib.errors import InputError

    pc, pr, rc, rr, wc, wr, mc, mr = _case(10)
    with pytest.raises(InputError) as err:
        sail_loss(pc, pr, rc, rr, wc, wr, change(mc), mr)
    assert str(err.value).startswith(says)
    mr[1] = 0
    with pytest.raises(InputError, match=r"^rejected_mask: row 1 has no response token"):
        sail_loss(pc, pr, rc, rr, wc, wr, mc, mr)
    assert torch.isfinite(sail_loss(pc, pr, rc, rr, wc, wr, mc.bool(), mr.bool() | True))  # bool masks are 0/1


@pytest.mark.parametrize("beta", [-1.0, 0.0, float("nan"), True, "0.1", torch.tensor([0.1, 0.2])])
def test_dpo_loss_checks_beta_like_sail_loss(beta):
    """dpo_loss took beta=-1 (the preference inverted, loss 4.41) and beta=0 (a flat log 2) silently."""
    from attrib.errors import InputError

    x = torch.tensor([-1.0, -2.0])
    with pytest.raises(InputError, match=r"^beta: must be a number above 0, got "):
        dpo_loss(x, x - 1, x, x, beta=beta)


def test_a_zero_d_tensor_beta_is_accepted_by_both_losses():
    """sail_loss(beta=torch.tensor(0.1)) was refused ("must be a number above 0, got tensor(0.1000)"), which got in
    the way of a scheduled β."""
    pc, pr, rc, rr, wc, wr, mc, mr = _case(11)
    as_tensor = sail_loss(pc, pr, rc, rr, wc, wr, mc, mr, beta=torch.tensor(0.1), alpha=torch.tensor(0.5))
    assert as_tensor.item() == pytest.approx(sail_loss(pc, pr, rc, rr, wc, wr, mc, mr, beta=0.1, alpha=0.5).item())
    x = torch.tensor([-1.0, -2.0])
    assert dpo_loss(x, x - 1, x, x, beta=torch.tensor(0.1)).item() == pytest.approx(
        dpo_loss(x, x - 1, x, x, beta=0.1).item())
    from attrib.errors import InputError

    with pytest.raises(InputError, match=r"^beta: must be a number above 0, got tensor\(-0.1000\)"):
        sail_loss(pc, pr, rc, rr, wc, wr, mc, mr, beta=torch.tensor(-0.1))

"""nmse_loss(squared=False): finite gradient at zero error (sqrt at 0 was NaN, the class of MONAI#8412)."""

import torch

from taskloss.losses import NMSELoss, nmse_loss


def test_gradient_at_zero_error_is_zero_not_nan():
    target = torch.rand(3, 1, 8, 9, dtype=torch.float64) + 0.1
    pred = torch.cat([target[:1].clone(), target[1:] + 0.05]).requires_grad_()  # image 0 exact
    nmse_loss(pred, target, squared=False, reduction="none").sum().backward()
    assert bool(torch.isfinite(pred.grad).all())
    assert bool((pred.grad[0] == 0).all())
    exact = target.clone().requires_grad_()
    NMSELoss(squared=False)(exact, target).backward()
    assert bool((exact.grad == 0).all())


def test_gradient_equals_the_analytic_one_away_from_zero():
    torch.manual_seed(0)
    target = torch.rand(2, 1, 6, 7, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_()
    nmse_loss(pred, target, squared=False, reduction="none").sum().backward()
    error = (pred - target).detach()
    norm_error = error.flatten(1).norm(dim=1).reshape(2, 1, 1, 1)
    norm_target = target.flatten(1).norm(dim=1).reshape(2, 1, 1, 1)
    torch.testing.assert_close(pred.grad, error / (norm_error * norm_target), rtol=1e-12, atol=0)
    assert torch.autograd.gradcheck(lambda p: nmse_loss(p, target, squared=False), (pred.detach().requires_grad_(),))

"""Model factories used by the `module:callable` target spec tests."""

import torch
from torch import nn


def tiny_relu() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def not_a_module():
    return 42


def deep_with_dead_unit() -> nn.Module:
    """12 -> 6 -> 2 ReLU network whose hidden unit 3 is never active (zero row, negative bias)."""
    g = torch.Generator().manual_seed(3)
    model = nn.Sequential(nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    with torch.no_grad():
        for lin in (model[0], model[2]):
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64) / lin.in_features ** 0.5)
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g, dtype=torch.float64) * 0.3)
        model[0].weight[3] = 0.0
        model[0].bias[3] = -1.0
    return model

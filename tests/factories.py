"""Model factories used by the `module:callable` target spec tests."""

import torch
from torch import nn


def tiny_relu() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def not_a_module():
    return 42

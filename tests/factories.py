"""Model factories used by the `module:callable` target spec tests."""

import torch
from torch import nn


def tiny_relu() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def not_a_module():
    return 42


def sigmoid_net(d: int = 6, h: int = 5, seed: int = 0) -> nn.Module:
    """A two-layer network with sigmoid hidden units and a sigmoid output (a pretrained MNIST net's shape)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Sigmoid(), nn.Linear(h, 1), nn.Sigmoid())


def softmax_net(d: int = 6, h: int = 5, k: int = 3, seed: int = 0) -> nn.Module:
    """A ReLU network ending in its softmax, as Keras classifiers do."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, k), nn.Softmax(dim=1))


def logistic_with_sigmoid(d: int = 8, seed: int = 0) -> nn.Module:
    """A logistic regression that returns its probability: Linear then Sigmoid."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 1), nn.Sigmoid())


class WithUnusedLayer(nn.Module):
    """A ReLU network with a layer it registers first but never calls."""

    def __init__(self, d: int = 6, h: int = 4):
        super().__init__()
        torch.manual_seed(3)
        self.unused = nn.Linear(d, 50)
        self.fc1 = nn.Linear(d, h)
        self.fc2 = nn.Linear(h, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def mlp_needing_arguments(d: int, hidden: int, seed: int = 0) -> nn.Module:
    """A factory whose arguments have no defaults."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1))


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


class HandWrittenDeepRelu(nn.Module):
    """10 -> 8 -> 8 -> 8 -> 1 written by hand (named layers, functional relu), torch's default init."""

    def __init__(self, d: int = 10, h: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b, self.c, self.head = nn.Linear(d, h), nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, 1)

    def forward(self, x):
        return self.head(torch.relu(self.c(torch.relu(self.b(torch.relu(self.a(x)))))))


class ResidualRelu(nn.Module):
    """A skip connection: out = W3 (relu(W2 h + b2) + h) + b3 with h = relu(W1 x + b1).  Piecewise linear, but
    not a fully connected ReLU chain: no exact deep attack models it."""

    def __init__(self, d: int = 12, h: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc1, self.fc2, self.out = nn.Linear(d, h), nn.Linear(h, h), nn.Linear(h, 1)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        return self.out(torch.relu(self.fc2(h)) + h)


def leaky_relu_net(d: int = 10, h: int = 8, seed: int = 0) -> nn.Module:
    """Piecewise linear but not ReLU: leaky ReLU (slope 0.01) hidden units."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.LeakyReLU(0.01), nn.Linear(h, 1))


def tanh_net(d: int = 10, h: int = 8, seed: int = 0) -> nn.Module:
    """A smooth network: tanh hidden units."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, 1))


def nan_net(d: int = 6, h: int = 5, seed: int = 0) -> nn.Module:
    """A ReLU network that answers NaN wherever its first input is negative (a broken export)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, 1))

    class NanWhereNegative(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            y = self.net(x)
            return torch.where(x[:, :1] < 0, torch.full_like(y, float("nan")), y)

    return NanWhereNegative()


def label_net(d: int = 6, h: int = 5, k: int = 3, seed: int = 0) -> nn.Module:
    """A ReLU classifier that returns its predicted label (an integer), not scores."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, k))

    class Argmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x).argmax(dim=1)

    return Argmax()


def deep_with_unit_always_on(d: int = 24, widths: tuple = (10, 8, 6, 2), seed: int = 0, layer: int = 2,
                             unit: int = 3, times: float = 5.0) -> nn.Module:
    """The builtin ``deep`` network (init=random, the same weights) with the bias of ``unit`` of hidden ``layer``
    raised ``times`` the shift that makes it on at every one of 10^5 standard normal inputs (an inner neuron that no
    line in the box sees switch)."""
    import numpy as np

    from modelrecon.targets.zoo import build_deep

    *hidden, k = widths
    model = build_deep(d, list(hidden), k, "random", seed, 0, 0.5)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        a = torch.as_tensor(np.random.default_rng(7).normal(size=(100_000, d)))
        for lin in linears[:layer - 1]:
            a = torch.relu(lin(a))
        z = linears[layer - 1](a)[:, unit]
        linears[layer - 1].bias[unit] += times * max(0.0, -float(z.min()))
    return model

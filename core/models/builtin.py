"""The two small built-in networks, trained on the digits split."""

from __future__ import annotations

from torch import nn


class DigitsCNN(nn.Module):
    """Two 3x3 conv layers and a linear classifier for 1x8x8 digits."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 4 * 4, num_classes)

    def forward(self, x):
        x = self.act(self.conv1(x))
        x = self.pool(self.act(self.conv2(x)))
        return self.fc(x.flatten(1))


class DigitsMLP(nn.Module):
    """A dense 64-128-64-10 network for flattened 8x8 digits."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, num_classes)
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.act(self.fc1(x.flatten(1)))
        x = self.act(self.fc2(x))
        return self.fc3(x)

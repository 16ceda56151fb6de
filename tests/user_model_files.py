"""Source text shared by the tests that write a user's model file (--model FILE.py:FUNCTION, dlprobe inspect)."""

# The imports and a residual block (conv, BatchNorm, skip connection) that the files' factories build on.
RESIDUAL_HEADER = '''
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(x + self.norm(self.conv(x)))
'''

"""TensorData: the training and test tensors every trainer and experiment passes around.

    data = TensorData(x_train, y_train, x_test, y_test).to("cuda")

It lives in data/ because it is what the data modules produce (tasks.py, function_dataset, load_dataset's
splits) and what the trainers consume: data flows from here into training/, never back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TensorData:
    """Training and test tensors. x: (N, ...) inputs; y: (N, K) float targets (mse) or (N,) int classes."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device) -> "TensorData":
        return TensorData(*(t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test)))

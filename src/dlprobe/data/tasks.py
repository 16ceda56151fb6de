"""A learning task for an MLP: a target function to fit or an image dataset to classify.

    task = load_task(config, data_dir)                    # config.dataset set: images, else config.function
    task = function_task("sinc", num_train=1000, num_test=200)
    task = image_task("mnist-5k", train_size=500)
    spec = MLPSpec(task.in_features, (32, 32), task.out_features, "tanh")
    train_ensemble(spec, seeds, task.data, TrainSpec(loss=task.loss, ...))

The experiments that can run on either kind of task (trajectory, grad-norm, error-surface) take their
data, input and output sizes, loss and the summary's task description from one `Task`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .functions import function_dataset, get_function
from .images import load_dataset
from .tensors import TensorData


@dataclass(frozen=True)
class Task:
    """The data of a task and what an experiment records about it.

    kind: "function" (regression, x (N, 1) and y (N, 1) float32) or "images" (x (N, C, H, W) float32, y (N,)
    int64 classes). name: the registered function or the dataset (e.g. "sinc", "mnist-5k"); description: the
    function's formula, or the dataset's name; loss: "mse" or "cross_entropy"; note: the dataset's note
    ("" for a function). in_features / out_features: the MLP's input size (1, or C * H * W) and output size
    (1, or the number of classes).
    """

    kind: str
    name: str
    description: str
    loss: str
    note: str
    data: TensorData
    in_features: int
    out_features: int

    def describe(self) -> dict:
        """{kind, name, description, loss}: the task as summary.json records it."""
        return {"kind": self.kind, "name": self.name, "description": self.description, "loss": self.loss}


def function_task(function: str, num_train: int, num_test: int) -> Task:
    """Fit a function of one variable (a registered name or an expression in x) on evenly spaced grids."""
    target = get_function(function)
    data = TensorData(*function_dataset(target, num_train, num_test))
    return Task("function", target.name, target.formula, "mse", "", data, 1, 1)


def image_task(dataset: str, train_size: int | None = None, data_dir=None) -> Task:
    """Classify the images of a dataset; train_size: a deterministic stratified subset (default: all)."""
    images = load_dataset(dataset, data_dir=data_dir, train_size=train_size)
    data = TensorData(images.x_train, images.y_train, images.x_test, images.y_test)
    return Task("images", images.name, images.name, "cross_entropy", images.note, data, int(np.prod(images.x_train.shape[1:])),
                images.num_classes)


def load_task(config, data_dir=None) -> Task:
    """The image task of config.dataset (with config.train_size) when it is set, else the function task of
    config.function (with config.num_train and config.num_test grid points)."""
    if config.dataset:
        return image_task(config.dataset, config.train_size, data_dir)
    return function_task(config.function, config.num_train, config.num_test)

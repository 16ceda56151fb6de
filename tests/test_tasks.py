"""data/tasks.py: a function or an image dataset as one Task, and load_task's choice between them."""

from types import SimpleNamespace

import pytest

from dlprobe.data.tasks import Task, function_task, image_task, load_task


def test_function_task_is_a_regression_with_one_input_and_one_output():
    task = function_task("sinc", num_train=20, num_test=5)
    assert (task.kind, task.name, task.loss, task.note, task.in_features, task.out_features) == ("function", "sinc", "mse", "", 1, 1)
    assert task.data.x_train.shape == (20, 1) and task.data.y_train.shape == (20, 1) and task.data.x_test.shape == (5, 1)
    assert list(task.describe()) == ["kind", "name", "description", "loss"]  # the order summary.json records


def test_image_task_classifies_flattened_images():
    task = image_task("mnist-5k", train_size=100)
    assert (task.kind, task.name, task.description, task.loss) == ("images", "mnist-5k", "mnist-5k", "cross_entropy")
    assert (task.in_features, task.out_features) == (784, 10)
    assert len(task.data.x_train) == 100 and "stratified training subset of 100" in task.note


def test_load_task_takes_the_dataset_when_one_is_set():
    settings = SimpleNamespace(dataset=None, function="sin(3*x)", train_size=None, num_train=10, num_test=4)
    assert load_task(settings).kind == "function" and len(load_task(settings).data.x_train) == 10
    assert load_task(SimpleNamespace(**{**vars(settings), "dataset": "mnist-5k", "train_size": 50})).kind == "images"


def test_task_is_frozen():
    task = function_task("sinc", num_train=4, num_test=2)
    assert isinstance(task, Task)
    with pytest.raises(AttributeError):
        task.loss = "cross_entropy"

"""dlprobe on your own model: a small CNN with BatchNorm and dropout, trained on scikit-learn's digits.

    python examples/cnn_batchnorm.py --out figures/          # ~1 minute on 2 CPU cores
    python examples/cnn_batchnorm.py --small --out /tmp/x    # a few seconds (what the test suite runs)

It trains the network with a DataLoader, then measures it through the public API: the top Hessian
eigenvalues and the trace, the spectral density (plot), a filter-normalized loss surface with BatchNorm
statistics kept and recomputed on the training data (plot), epsilon-sharpness and input sensitivity.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dlprobe


def digits(num_train: int, seed: int = 0):
    """(train, test) TensorDatasets of 8x8 digit images (N, 1, 8, 8) scaled to [0, 1], labels (N,)."""
    images, labels = load_digits(return_X_y=True)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    x = torch.tensor(images, dtype=torch.float32)[order].view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(labels)[order]
    return TensorDataset(x[:num_train], y[:num_train]), TensorDataset(x[num_train:], y[num_train:])


def cnn(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),    # (B, w, 4, 4)
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * width * 2 * 2, 10),
    )


def train(model: nn.Module, loader: DataLoader, epochs: int, seed: int) -> None:
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for inputs, targets in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes: a few seconds (for the test suite)")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="folder for the two figures")
    args = parser.parse_args(argv)
    width, num_train, epochs, steps = (4, 256, 2, 5) if args.small else (8, 1200, 15, 11)
    train_set, test_set = digits(num_train)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    test_loader = DataLoader(test_set, batch_size=256)
    torch.manual_seed(0)
    model = cnn(width)
    train(model, train_loader, epochs, seed=0)
    model.eval()  # the deterministic network: dropout off, BatchNorm with its running statistics

    loss = nn.CrossEntropyLoss()
    hessian = dlprobe.Hessian(model, loss, train_loader, progress=False)
    top = hessian.eigenvalues(3 if args.small else 5)
    trace = hessian.trace(probes=10 if args.small else 100, seed=0)
    density = hessian.density(steps=10 if args.small else 60, runs=1 if args.small else 3, seed=0)
    head = dlprobe.Hessian(model, loss, train_loader, params=model[-1], progress=False)  # the last layer's block
    metrics = {"loss": loss, "accuracy": dlprobe.accuracy}
    kept = dlprobe.surface(model, test_loader, metrics, steps=steps, span=0.5, seed=0, bn="keep", progress=False)
    recomputed = dlprobe.surface(model, test_loader, metrics, steps=steps, span=0.5, seed=0, bn=train_loader, progress=False)
    sharp = dlprobe.sharpness(model, loss, train_loader, epsilon=1e-3, steps=5, seed=0)
    sensitivity = dlprobe.sensitivity(model, test_loader, kind="input_gradient", loss_fn=loss)

    args.out.mkdir(parents=True, exist_ok=True)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    dlprobe.plot_spectrum(top, ax=axes[0])
    dlprobe.plot_density(density, ax=axes[1])
    figure.savefig(args.out / "spectrum.png", dpi=100)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    dlprobe.plot_surface(kept, "loss", ax=axes[0]).set_title("BatchNorm statistics kept")
    dlprobe.plot_surface(recomputed, "loss", ax=axes[1]).set_title("recomputed on the training data")
    figure.savefig(args.out / "surface.png", dpi=100)
    plt.close("all")

    numbers = {
        "num_params": hessian.num_params, "train_loss": hessian.loss, "top_eigenvalues": top.values.tolist(),
        "last_layer_top_eigenvalue": float(head.eigenvalues(1).values[0]),
        "trace": trace.estimate, "trace_standard_error": trace.standard_error,
        "test_loss_at_centre": float(kept.values["loss"][steps // 2, steps // 2]),
        "sharpness_percent": sharp.sharpness, "input_gradient_sensitivity": sensitivity,
    }
    for name, value in numbers.items():
        print(f"{name}: {value}")
    return numbers


if __name__ == "__main__":
    main()

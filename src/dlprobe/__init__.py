"""dlprobe: the deep-learning-theory experiment suite, measured and reported, and its measurements as a library.

Run `dlprobe list` for the experiments and `dlprobe run all --profile quick` for the demo. On your own model:

    import dlprobe
    hessian = dlprobe.Hessian(model, torch.nn.CrossEntropyLoss(), loader)   # any nn.Module, loss, DataLoader
    hessian.eigenvalues(5).values, hessian.trace(100).estimate, hessian.density()

The public names below are imported on first use (module `__getattr__`), so `import dlprobe` and the CLI stay
fast: torch, scipy and matplotlib load only when a measurement or a plot is asked for.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "Hessian": "dlprobe.library.hessian",
    "rademacher_probes": "dlprobe.library.hessian",
    "select_parameters": "dlprobe.library.selection",
    "interpolate": "dlprobe.library.landscapes",
    "surface": "dlprobe.library.landscapes",
    "filter_directions": "dlprobe.library.landscapes",
    "trajectory_plane": "dlprobe.library.landscapes",
    "TrajectoryPlane": "dlprobe.library.results",
    "sharpness": "dlprobe.library.measures",
    "sensitivity": "dlprobe.library.measures",
    "accuracy": "dlprobe.library.measures",
    "critical_point": "dlprobe.library.critical",
    "CriticalPoint": "dlprobe.library.results",
    "Sharpness": "dlprobe.library.results",
    "Eigenvalues": "dlprobe.library.results",
    "TraceEstimate": "dlprobe.library.results",
    "SpectralDensity": "dlprobe.library.results",
    "MinimalRatio": "dlprobe.library.results",
    "Line": "dlprobe.library.results",
    "Surface": "dlprobe.library.results",
    "plot_spectrum": "dlprobe.plotting.library",
    "plot_density": "dlprobe.plotting.library",
    "plot_line": "dlprobe.plotting.library",
    "plot_surface": "dlprobe.plotting.library",
    "UsageError": "dlprobe.errors",
    "DlprobeError": "dlprobe.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'dlprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

"""The examples and the README's "Use it on your own model" snippet run as a user would run them (small sizes)."""

import importlib.util
import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it on your own model", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_cnn_batchnorm_example_runs_at_small_size(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("cnn_batchnorm", ROOT / "examples" / "cnn_batchnorm.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    numbers = example.main(["--small", "--out", str(tmp_path)])
    assert (tmp_path / "spectrum.png").stat().st_size > 0 and (tmp_path / "surface.png").stat().st_size > 0
    top = numbers["top_eigenvalues"]
    assert top == sorted(top, reverse=True) and all(math.isfinite(v) for v in numbers.values() if isinstance(v, float))
    # Cauchy interlacing: a principal block's largest eigenvalue is at most the whole Hessian's.
    assert numbers["last_layer_top_eigenvalue"] <= top[0] * (1 + 1e-4)
    assert numbers["sharpness_percent"] >= 0 and numbers["input_gradient_sensitivity"] > 0
    assert "top_eigenvalues:" in capsys.readouterr().out


def test_readme_snippet_runs_verbatim(tmp_path, monkeypatch):
    code = readme_snippet()
    assert "dlprobe.Hessian(" in code and len(code.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "density.png").stat().st_size > 0
    assert namespace["plane"].values["loss"].shape == (11, 11)


def test_examples_folder_holds_only_tested_scripts():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == ["cnn_batchnorm.py"]

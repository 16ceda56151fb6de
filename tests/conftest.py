"""Shared test set-up: import from src/ without installing, and keep torch to one thread (fast, repeatable)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
torch.set_num_threads(1)

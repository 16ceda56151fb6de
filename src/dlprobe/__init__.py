"""dlprobe: the deep-learning-theory experiment suite, measured and reported.

Run `dlprobe list` for the experiments and `dlprobe run all --profile quick` for the demo.
"""

__version__ = "0.1.0"

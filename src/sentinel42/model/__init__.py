"""The LSTM predictor: features, training, evaluation against baselines, registry, inference.

Only ``network``, ``trainer`` and the registry's load/save import torch, and only when used, so
importing this package (and the CLI) stays fast.
"""

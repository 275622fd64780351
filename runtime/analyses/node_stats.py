"""Per-prompt node values, collected batch by batch, and their summary in
results.json (docs/results.md): the mean over prompts (`values`), its standard error
(`stderr`) and the prompt count (`n`), plus the per-prompt lists for `--per-prompt`."""
from __future__ import annotations

import math

import torch


class PerPrompt:
    """Values of each key for every prompt, in prompt order."""

    def __init__(self):
        self._parts: dict = {}

    def add(self, key, values: torch.Tensor) -> None:
        """Append one batch's values [batch] for `key`."""
        self._parts.setdefault(key, []).append(torch.as_tensor(values).detach().to("cpu", torch.float64).reshape(-1))

    def of(self, key) -> torch.Tensor:
        """float64 [n]: every prompt's value of `key`."""
        return torch.cat(self._parts[key])


def summary(per_prompt: dict) -> dict:
    """{"values", "stderr", "n", "per_prompt"} from {key: float [n]} tensors."""
    values, stderr, lists, n = {}, {}, {}, 0
    for key, column in per_prompt.items():
        n = int(column.numel())
        values[key] = float(column.mean())
        stderr[key] = standard_error(column)
        lists[key] = [float(v) for v in column]
    return {"values": values, "stderr": stderr, "n": n, "per_prompt": lists}


def standard_error(column: torch.Tensor) -> float:
    """Sample standard deviation (n - 1) over sqrt(n); 0 for a single prompt."""
    n = int(column.numel())
    if n < 2:
        return 0.0
    return float(column.std(unbiased=True)) / math.sqrt(n)


def ratio_of_means(above: torch.Tensor, below: torch.Tensor) -> tuple[float | None, float | None]:
    """mean(above) / mean(below) and its standard error by the delta method: the
    standard error of the mean of the linearised residuals (above - r * below) /
    mean(below). (None, None) when mean(below) is 0."""
    denominator = float(below.mean())
    if denominator == 0:
        return None, None
    ratio = float(above.mean()) / denominator
    return ratio, standard_error((above - ratio * below) / denominator)

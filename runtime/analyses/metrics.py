"""Per-prompt metrics on a batch of logits, at the positions a metric names.

Every metric is computed at each position its `Position` picks in a prompt and
averaged over those positions, giving one number per prompt:

  logit_diff  answer logit minus the mean logit of the wrong answers
  prob        softmax probability of the answer
  logprob     log-probability of the answer
  accuracy    1.0 where the answer's logit beats every wrong answer's, else 0.0
  kl          KL(clean || this) between the next-token distributions; needs clean_logits
  loss        next-token cross-entropy: at a position before the last real token the
              target is the prompt's next token, at the last one it is the answer
  answer_logprob
              the whole answer's log-probability: the sum over its tokens of each
              one's log-probability at the position before it (teacher-forced: the
              prompt holds the answer's tokens but the last, runtime/data/prompts.py);
              read at those positions whatever the metric's `at`

Every kind but answer_logprob and kl reads one answer token: on a prompt whose answer
or wrong answers have several tokens it raises a MetricError that names
answer_logprob.

Normalised forms, (x - corrupt) / (clean - corrupt), are computed by callers from
their baselines with `normalize`.

A metric's direction (`better`): loss and kl are better when lower, every other kind
and every normalised metric (1 = clean, 0 = corrupt) when higher. `helps_sign` turns
a change of the metric into how much it helped (docs/results.md, sign convention).
"""
from __future__ import annotations

import torch
from circ.compiler import ir

METRIC_KINDS = ("logit_diff", "prob", "logprob", "accuracy", "kl", "loss", "answer_logprob")
LOWER_IS_BETTER = ("loss", "kl")
WHOLE_ANSWER = ("answer_logprob",)  # metrics over every token of the answer
ONE_ANSWER_TOKEN = ("logit_diff", "prob", "logprob", "accuracy", "loss")


def better(metric: ir.Metric) -> str:
    """"higher" or "lower": which way the metric moves when the behaviour improves."""
    return "lower" if metric.kind in LOWER_IS_BETTER and not metric.normalized else "higher"


def helps_sign(metric: ir.Metric) -> float:
    """+1 for a higher-is-better metric, -1 for a lower-is-better one: the factor that
    makes metric(clean) - metric(patched) positive when the patched node helped."""
    return 1.0 if better(metric) == "higher" else -1.0


class MetricError(Exception):
    """A metric that cannot be computed with what it was given."""


def reads_last_only(metric: ir.Metric) -> bool:
    """Whether the metric reads each prompt's last position only (so that a kernel may
    compute the logits there alone)."""
    return metric.position.kind == "last" and metric.kind not in WHOLE_ANSWER


def reads_one_token(metric: ir.Metric, prompts) -> bool:
    """False when the metric reads one answer token but a prompt's answer or wrong
    answers have several."""
    return metric.kind not in ONE_ANSWER_TOKEN or not bool(prompts.split.any())


def metric_values(logits: torch.Tensor, prompts, metric: ir.Metric, *, clean_logits: torch.Tensor | None = None) -> torch.Tensor:
    """float [batch]: `metric` for each prompt of `prompts` (a batch matching `logits`)."""
    if metric.kind not in METRIC_KINDS:
        raise MetricError(f"unknown metric kind {metric.kind!r}")
    if metric.kind == "kl" and clean_logits is None:
        raise MetricError("the kl metric needs the clean run's logits")
    if not reads_one_token(metric, prompts):
        raise MetricError(split_message(metric, prompts))
    logits = logits.float()
    if metric.kind in WHOLE_ANSWER:
        return _answer_logprob(logits, prompts)
    return position_mean(_per_position(logits, prompts, metric.kind, clean_logits), prompts, metric.position)


def position_mean(per_position: torch.Tensor, prompts, position: ir.Position) -> torch.Tensor:
    """float [batch]: per_position [batch, seq] averaged over the positions `position` picks."""
    weights = prompts.position_mask(position).to(per_position.device).to(per_position.dtype)
    return (per_position * weights).sum(dim=1) / weights.sum(dim=1)


def logit_diff_direction(W_U: torch.Tensor, b_U: torch.Tensor, prompts) -> tuple[torch.Tensor, torch.Tensor]:
    """(direction [batch, d_model], offset [batch]): a prompt's logit difference (its
    answer's logit minus the mean of its wrong answers') at any position is its final
    normalised residual stream . direction + offset, for the unembedding W_U
    [d_model, d_vocab] and b_U [d_vocab]."""
    device = W_U.device
    answer, wrong = prompts.answer.to(device), prompts.wrong.to(device)
    valid = prompts.wrong_valid.float().to(device)
    wrong_mean = (W_U[:, wrong] * valid).sum(-1) / valid.sum(-1)  # [d_model, batch]
    offset = b_U[answer] - (b_U[wrong] * valid).sum(-1) / valid.sum(-1)
    return (W_U[:, answer] - wrong_mean).T, offset


def normalize(x, clean, corrupt):
    """Where `x` lies between the corrupt baseline (0) and the clean one (1)."""
    return (x - corrupt) / (clean - corrupt)


def _per_position(logits: torch.Tensor, prompts, kind: str, clean_logits) -> torch.Tensor:
    """float [batch, seq]: the metric at every position."""
    answer = prompts.answer.to(logits.device)
    if kind == "logit_diff":
        return _answer_logit(logits, answer) - _mean_wrong_logit(logits, prompts)
    if kind in ("prob", "logprob"):
        logprobs = logits.log_softmax(dim=-1).gather(-1, _expand(answer, logits)).squeeze(-1)
        return logprobs.exp() if kind == "prob" else logprobs
    if kind == "accuracy":
        wrong = prompts.wrong.to(logits.device)
        wrong_logits = logits.gather(-1, wrong[:, None, :].expand(-1, logits.shape[1], -1))
        wrong_logits = wrong_logits.masked_fill(~prompts.wrong_valid.to(logits.device)[:, None, :], float("-inf"))
        return (_answer_logit(logits, answer) > wrong_logits.max(dim=-1).values).float()
    if kind == "kl":
        clean = clean_logits.float().log_softmax(dim=-1)
        this = logits.log_softmax(dim=-1)
        return (clean.exp() * (clean - this)).sum(dim=-1)
    targets = torch.cat([prompts.tokens[:, 1:], prompts.tokens[:, -1:]], dim=1).to(logits.device)
    targets = targets.scatter(1, prompts.last.to(logits.device)[:, None], answer[:, None])
    return -logits.log_softmax(dim=-1).gather(-1, targets[..., None]).squeeze(-1)


def _answer_logprob(logits: torch.Tensor, prompts) -> torch.Tensor:
    """float [batch]: the sum over each answer's tokens of its log-probability at the
    position before it."""
    device = logits.device
    count = prompts.answer_count.to(device)
    steps = torch.arange(prompts.answer_tokens.shape[1], device=device)
    reads = (prompts.answer_start.to(device)[:, None] + steps[None, :]).clamp(max=logits.shape[1] - 1)
    logprobs = logits.gather(1, reads[..., None].expand(-1, -1, logits.shape[-1])).log_softmax(dim=-1)
    scored = logprobs.gather(-1, prompts.answer_tokens.to(device)[..., None]).squeeze(-1)  # [batch, k]
    return (scored * (steps[None, :] < count[:, None])).sum(dim=1)


def split_message(metric: ir.Metric, prompts) -> str:
    """Why `metric` cannot read `prompts`: the first prompt whose answers split."""
    row = int(prompts.split.nonzero()[0])
    example = prompts.examples[row]
    count = int(prompts.answer_count[row])
    what = (f"its answer {example.answer!r} is {count} tokens" if count > 1
            else "one of its wrong answers is several tokens")
    where = (f"line {example.line} of {prompts.name}" if example.line is not None
             else f"prompt {int(prompts.rows[row])} of {prompts.name}")
    label = f"{metric.kind}()" if metric.name.startswith("_") else f"`{metric.name}` ({metric.kind})"
    return (f"{label} reads one answer token, but at {where} {what}; "
            f"score the whole answer with `answer_logprob(answer)`")


def _expand(index: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return index[:, None, None].expand(-1, logits.shape[1], 1)


def _answer_logit(logits: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    return logits.gather(-1, _expand(answer, logits)).squeeze(-1)


def _mean_wrong_logit(logits: torch.Tensor, prompts) -> torch.Tensor:
    wrong = prompts.wrong.to(logits.device)
    valid = prompts.wrong_valid.to(logits.device).to(logits.dtype)
    wrong_logits = logits.gather(-1, wrong[:, None, :].expand(-1, logits.shape[1], -1))
    return (wrong_logits * valid[:, None, :]).sum(-1) / valid.sum(-1)[:, None]

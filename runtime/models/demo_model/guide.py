"""Attention guidance: an auxiliary loss that gets the demo model off its plateau.

Answering a multiple-choice prompt takes two attention moves that are only useful
together: in the first layer, each option text picks up its label (two words back)
and the final `:` picks up the answer text (two words back); in the last layer, the
final `:` finds the option text equal to the answer text and reads the label off
it. Trained on the task loss alone, neither move pays off before the other exists,
and the loss stays at chance. For the first steps of training this loss pulls head
0 of the first layer towards attending two words back everywhere, and head 0 of the
last layer, at the final `:` of every query, towards the option text it asks
about. Its weight falls linearly to zero; from then on the task loss alone shapes
the model, so whatever it keeps of these moves is what the task needs.
"""
from __future__ import annotations

import torch
from circ.runtime.models.demo_model.data import Sequence

GUIDED_HEAD = 0
EPSILON = 1e-6


def guide_loss(attentions: tuple[torch.Tensor, ...], batch: list[Sequence]) -> torch.Tensor:
    """Mean -log attention weight on the targets, for both guided heads.

    attentions: the model's attention patterns, one [batch, head, query, key]
    tensor per layer, for the sequences of `batch`."""
    first = attentions[0][:, GUIDED_HEAD]
    last = attentions[-1][:, GUIDED_HEAD]
    queries = torch.arange(2, first.shape[-1])
    lengths = torch.tensor([len(sequence.words) for sequence in batch])
    inside = queries[None, :] < lengths[:, None]
    two_back = first[:, queries, queries - 2][inside]
    rows, finals, texts = [], [], []
    for row, sequence in enumerate(batch):
        for answer, text in zip(sequence.answers, sequence.option_texts):
            rows.append(row)
            finals.append(answer - 1)
            texts.append(text)
    lookup = last[rows, finals, texts]
    return -torch.log(two_back + EPSILON).mean() - torch.log(lookup + EPSILON).mean()

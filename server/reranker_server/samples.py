"""Fixed text the server scores without users: warm-up passages, int8 calibration, integrity canaries.

Kept in one module below both the preparation and the serving runtime, so neither imports the
other for a sentence.
"""

from __future__ import annotations

from typing import Final

#: Common English words, whole tokens in every reranker vocabulary: a passage of n words is about n
#: tokens, so warm-up tokenises what it measures, as production text does. Passages walk through
#: them in varied orders: a sentence repeated hundreds of times is not text, and with some weights
#: it drives activations into slow denormal floats that real traffic never sees.
WARMUP_QUERY: Final = "how to find the best answer to a query"
TEXT: Final = (
    "the best answer to a query is often in the first passage that a search system can find but "
    "people also read more than one page when they want to know why a thing can work and how long it "
    "will take so every good answer should tell them what did happen where and who made it"
)
WORDS: Final = tuple(TEXT.split())

#: Pairs whose reference logits the preparation records from PyTorch on the original checkpoint and
#: the server recomputes at warm-up. Relevant and irrelevant passages of a few lengths, so a graph
#: without its classifier head, a wrong tokenizer or a broken quantisation moves some of them.
CANARY_PAIRS: Final = (
    ("how do I keep reranking latency low?", "Cap the number of candidates and the sequence length."),
    ("how do I keep reranking latency low?", "The recipe needs two cups of flour and one egg."),
    ("what is a cross-encoder?", "A cross-encoder reads the query and the passage together and scores them."),
    ("what is a cross-encoder?", "Paris is the capital of France."),
    ("when is a pod ready?", "A pod is ready when its readiness probe succeeds and it can serve traffic."),
    ("when is a pod ready?", "Bananas are rich in potassium."),
    ("why quantise to int8?", "int8 matrix products run about twice as fast as fp32 on modern CPUs."),
    ("why quantise to int8?", " ".join(WORDS)),
)

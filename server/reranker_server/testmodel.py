"""`reranker-server make-test-model`: a small, seeded BERT cross-encoder built offline, without torch.

Tests, CI and offline demos need a model without the hub, and trying the server should need only the
`server` extra. This draws seeded weights with numpy the way transformers initialises them, and writes
a real sequence-classification checkpoint (model.safetensors + config.json, loadable by transformers), a
real WordPiece (or, for XLM-R, Unigram) tokenizer over a fixed vocabulary and, unless asked not to,
`onnx/model.onnx` computed from the same weights (reranker_server.testgraph): laid out like a hub
reranker. Its scores are meaningless, its shapes and compute are real; it says so in its output, its
config.json and its README.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from reranker_server.testgraph import LAYER_NORM_EPS, XLMR_PAD_ID, Architecture, build_graph

MEANINGLESS_NOTE: Final = (
    "TEST MODEL built by `reranker-server make-test-model`: random weights, its scores are MEANINGLESS. "
    "Use it to test serving, batching and latency, never relevance."
)
SPECIAL_TOKENS: Final = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
PUNCTUATION: Final = ".,;:!?'\"()-/%$&+=@#*"
WORD_LIST: Final = """
the a an of to and in is it you that he she was for on are with as i his her they be at one have this
from or had by word but what some we can out other were all there when up use your how said each which
do their time if will way about many then them write would like so these long make thing see him two has
look more day could go come did number sound no most people my over know water than call first who may
down side been now find any new work part take get place made live where after back little only round
man year came show every good me give our under name very through just form sentence great think say help
low line differ turn cause much mean before move right boy old too same tell does set three want air well
also play small end put home read hand port large spell add even land here must big high such follow act
why ask men change went light kind off need house picture try us again animal point mother world near
build self earth father head stand own page should country found answer school grow study still learn
plant cover food sun four between state keep eye never last let thought city tree cross farm hard start
might story saw far sea draw left late run while press close night real life few north open seem together
next white children begin got walk example ease paper group always music those both mark often letter until
mile river car feet care second book carry took science eat room friend began idea fish mountain stop once
base hear horse cut sure watch color face wood main enough plain girl usual young ready above ever red list
though feel talk bird soon body dog family direct pose leave song measure door product black short numeral
class wind question happen complete ship area half rock order fire south problem piece told knew pass since
top whole king space heard best hour better true during hundred five remember step early hold west ground
interest reach fast verb sing listen six table travel less morning ten simple several vowel toward war lay
against pattern slow center love person money serve appear road map rain rule govern pull cold notice voice
unit power town fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest
correct able pound done beauty drive stood contain front teach week final gave green oh quick develop ocean
warm free minute strong special mind behind clear tail produce fact street inch multiply nothing course stay
wheel full force blue object decide surface deep moon island foot system busy test record boat common gold
query document passage search rerank reranker ranking relevance score latency throughput token tokens batch
model server cpu gpu memory cache kubernetes pod replica request response retrieval candidate answer
"""
WORDS: Final = tuple(WORD_LIST.split())


@dataclass(frozen=True)
class ModelShape:
    """The compute shape of the test model; defaults keep the test suite fast on two cores."""

    layers: int = 2
    hidden: int = 32
    heads: int = 0
    intermediate: int = 0
    max_positions: int = 512
    seed: int = 0
    #: Wider than BERT's 0.02 so that random weights still spread a tiny model's scores apart (tests
    #: compare rankings); deep shapes built for timing want the usual 0.02, or activations explode.
    initializer_range: float = 0.2

    @property
    def attention_heads(self) -> int:
        return self.heads or max(1, self.hidden // 32)

    @property
    def intermediate_size(self) -> int:
        return self.intermediate or 4 * self.hidden


def vocabulary() -> list[str]:
    """Special tokens, characters with their continuation pieces, then whole words: no text is [UNK]."""
    pieces = [*SPECIAL_TOKENS, *ALPHABET, *PUNCTUATION, *(f"##{c}" for c in ALPHABET)]
    return list(dict.fromkeys([*pieces, *WORDS]))


def make_test_model(
    out: Path, shape: ModelShape, *, with_onnx: bool = True, architecture: Architecture = "bert"
) -> Path:
    """Write the checkpoint, tokenizer and (optionally) onnx/model.onnx into `out`.

    `xlm-roberta` is bge-reranker-v2-m3's architecture (XLMRobertaForSequenceClassification): a
    SentencePiece-style tokenizer, `<s> A </s></s> B </s>` pairs, no token types, positions offset
    past the padding index.
    """
    from safetensors.numpy import save_file

    from reranker_server.preparation.export import GRAPH_NAME

    out.mkdir(parents=True, exist_ok=True)
    if architecture == "bert":
        vocab_size, config = _bert_tokenizer(out, shape), _bert_config(shape)
    else:
        vocab_size, config = _xlm_roberta_tokenizer(out, shape), _xlm_roberta_config(shape)
    config |= {"vocab_size": vocab_size, "kube_reranker_note": MEANINGLESS_NOTE}
    weights = initial_weights(shape, architecture, vocab_size, config["max_position_embeddings"])
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "README.md").write_text(f"# Test model\n\n{MEANINGLESS_NOTE}\n\nShape: {shape} ({architecture})\n")
    if with_onnx:
        graph = build_graph(
            weights, architecture=architecture, layers=shape.layers, heads=shape.attention_heads
        )
        (out / "onnx").mkdir(exist_ok=True)
        (out / "onnx" / GRAPH_NAME).write_bytes(graph.SerializeToString())
    return out


def initial_weights(
    shape: ModelShape, architecture: Architecture, vocab_size: int, positions: int
) -> dict[str, np.ndarray]:
    """transformers' initialisation, drawn from one seeded generator: every matrix and embedding
    ~ N(0, initializer_range), biases 0, LayerNorm 1 and 0, the padding rows of the embeddings 0."""
    rng = np.random.default_rng(shape.seed)
    hidden, inner = shape.hidden, shape.intermediate_size
    base = "bert" if architecture == "bert" else "roberta"
    weights: dict[str, np.ndarray] = {}

    def normal(name: str, *dims: int) -> None:
        weights[name] = rng.normal(0.0, shape.initializer_range, dims).astype(np.float32)

    def linear(prefix: str, out_features: int, in_features: int) -> None:
        normal(f"{prefix}.weight", out_features, in_features)
        weights[f"{prefix}.bias"] = np.zeros(out_features, dtype=np.float32)

    def layer_norm(prefix: str) -> None:
        weights[f"{prefix}.weight"] = np.ones(hidden, dtype=np.float32)
        weights[f"{prefix}.bias"] = np.zeros(hidden, dtype=np.float32)

    pad = 0 if architecture == "bert" else XLMR_PAD_ID
    normal(f"{base}.embeddings.word_embeddings.weight", vocab_size, hidden)
    weights[f"{base}.embeddings.word_embeddings.weight"][pad] = 0.0
    normal(f"{base}.embeddings.position_embeddings.weight", positions, hidden)
    if architecture == "xlm-roberta":
        weights[f"{base}.embeddings.position_embeddings.weight"][pad] = 0.0
    normal(f"{base}.embeddings.token_type_embeddings.weight", 2 if architecture == "bert" else 1, hidden)
    layer_norm(f"{base}.embeddings.LayerNorm")
    for layer in range(shape.layers):
        prefix = f"{base}.encoder.layer.{layer}"
        for projection in ("query", "key", "value"):
            linear(f"{prefix}.attention.self.{projection}", hidden, hidden)
        linear(f"{prefix}.attention.output.dense", hidden, hidden)
        layer_norm(f"{prefix}.attention.output.LayerNorm")
        linear(f"{prefix}.intermediate.dense", inner, hidden)
        linear(f"{prefix}.output.dense", hidden, inner)
        layer_norm(f"{prefix}.output.LayerNorm")
    if architecture == "bert":
        linear("bert.pooler.dense", hidden, hidden)
        linear("classifier", 1, hidden)
    else:
        linear("classifier.dense", hidden, hidden)
        linear("classifier.out_proj", 1, hidden)
    return weights


def _encoder_config(shape: ModelShape) -> dict[str, object]:
    return {
        "hidden_size": shape.hidden,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.attention_heads,
        "intermediate_size": shape.intermediate_size,
        "hidden_act": "gelu",
        "layer_norm_eps": LAYER_NORM_EPS,
        "initializer_range": shape.initializer_range,
        "position_embedding_type": "absolute",
        "num_labels": 1,
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0},
    }


def _bert_config(shape: ModelShape) -> dict[str, object]:
    return {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        **_encoder_config(shape),
        "max_position_embeddings": shape.max_positions,
        "type_vocab_size": 2,
        "pad_token_id": 0,
    }


def _xlm_roberta_config(shape: ModelShape) -> dict[str, object]:
    return {
        "architectures": ["XLMRobertaForSequenceClassification"],
        "model_type": "xlm-roberta",
        **_encoder_config(shape),
        # XLM-R numbers positions from padding_idx + 1: two more slots than usable tokens.
        "max_position_embeddings": shape.max_positions + 2,
        "type_vocab_size": 1,
        "pad_token_id": XLMR_PAD_ID,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }


def _save_tokenizer(out: Path, tokenizer: Tokenizer, settings: dict[str, object]) -> int:
    """tokenizer.json plus the two small files transformers' AutoTokenizer reads beside it."""
    tokenizer.save(str(out / "tokenizer.json"))
    specials = {k: v for k, v in settings.items() if k.endswith("_token")}
    (out / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    return tokenizer.get_vocab_size(with_added_tokens=True)


def _bert_tokenizer(out: Path, shape: ModelShape) -> int:
    vocab = vocabulary()
    ids = {token: index for index, token in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return _save_tokenizer(
        out,
        tokenizer,
        {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": True,
            "model_max_length": shape.max_positions,
            "clean_up_tokenization_spaces": False,
            "unk_token": "[UNK]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
        },
    )


def _xlm_roberta_tokenizer(out: Path, shape: ModelShape) -> int:
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    words = [f"\u2581{word}" for word in WORDS]
    characters = [*ALPHABET, *PUNCTUATION]
    pieces = list(
        dict.fromkeys(
            [(token, 0.0) for token in specials]
            + [(word, -1.0) for word in words]
            + [(f"\u2581{c}", -5.0) for c in characters]
            + [(c, -6.0) for c in characters]
            + [("\u2581", -8.0)]
        )
    )
    pieces.append(("<mask>", 0.0))
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=specials.index("<unk>")))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.post_processor = processors.RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0))
    tokenizer.add_special_tokens([*specials, "<mask>"])
    return _save_tokenizer(
        out,
        tokenizer,
        {
            "tokenizer_class": "XLMRobertaTokenizer",
            "model_max_length": shape.max_positions,
            "clean_up_tokenization_spaces": False,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
        },
    )

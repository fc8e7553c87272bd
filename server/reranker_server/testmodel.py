"""`reranker-server make-test-model`: a small, seeded BERT cross-encoder built entirely offline.

Tests, CI and offline demos need a model without the hub. This builds a real BERT-style
sequence-classification checkpoint (random weights, one logit) and a real WordPiece tokenizer
over a fixed vocabulary, laid out like a hub reranker: transformers files at the top and, unless
asked not to, `onnx/model.onnx` beside them. Its scores are meaningless, its shapes and compute are
real; it says so in its output, its config.json and its README.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

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
Architecture = Literal["bert", "xlm-roberta"]


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
    import torch

    from reranker_server.preparation.export import GRAPH_NAME, export_module

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(shape.seed)
    if architecture == "bert":
        model, input_names = _bert(out, shape)
    else:
        model, input_names = _xlm_roberta(out, shape)
    model.config.kube_reranker_note = MEANINGLESS_NOTE
    model.save_pretrained(out)
    (out / "README.md").write_text(f"# Test model\n\n{MEANINGLESS_NOTE}\n\nShape: {shape} ({architecture})\n")
    if with_onnx:
        (out / "onnx").mkdir(exist_ok=True)
        export_module(model, out / "onnx" / GRAPH_NAME, input_names=input_names)
    return out


def _bert(out: Path, shape: ModelShape) -> tuple[Any, list[str]]:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

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
    BertTokenizerFast(tokenizer_object=tokenizer, model_max_length=shape.max_positions).save_pretrained(out)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_positions,
        num_labels=1,
        initializer_range=shape.initializer_range,
        attn_implementation="eager",
    )
    return BertForSequenceClassification(config).eval(), ["input_ids", "attention_mask", "token_type_ids"]


def _xlm_roberta(out: Path, shape: ModelShape) -> tuple[Any, list[str]]:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast

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
    XLMRobertaTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=shape.max_positions,
    ).save_pretrained(out)
    config = XLMRobertaConfig(
        vocab_size=len(pieces),
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.attention_heads,
        intermediate_size=shape.intermediate_size,
        # XLM-R numbers positions from padding_idx + 1: two more slots than usable tokens.
        max_position_embeddings=shape.max_positions + 2,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=1,
        initializer_range=shape.initializer_range,
        attn_implementation="eager",
    )
    return XLMRobertaForSequenceClassification(config).eval(), ["input_ids", "attention_mask"]

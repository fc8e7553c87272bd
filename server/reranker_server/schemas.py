"""Request and response models of the HTTP API, in the shapes existing clients already send.

`/rerank` is Hugging Face text-embeddings-inference's shape, or Infinity's when the body carries
`documents`; `/v1/rerank` and `/v2/rerank` are Cohere's (also spoken by Jina and Infinity clients).
Limits are named constants shared by validation, the OpenAPI schema and error messages.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    StrictBool,
    Tag,
    WithJsonSchema,
    model_validator,
)

from reranker_server.engine import sigmoid

MIN_DOCUMENTS: Final = 1
MIN_TOP_N: Final = 1
MIN_TOKENS_PER_DOC: Final = 1
DOCUMENT_SHAPE: Final = "a string or an object with a string `text` field"


def _valid_unicode(value: str) -> str:
    """JSON may escape lone surrogates (\\ud800) that no tokenizer can read: refuse them here, by name."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"the text holds an unpaired surrogate at character {exc.start}: not valid Unicode"
            ) from None
    return value


def _non_blank(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("the query must not be empty or only whitespace")
    return value


def _document_text(value: Any) -> Any:
    """Accept Cohere v1/Jina `{"text": ...}` objects as well as plain strings; name the shape otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    raise ValueError(f"each document must be {DOCUMENT_SHAPE}, got {json_type(value)}")


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, as the client wrote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object without a string `text`" if isinstance(value, dict) else type(value).__name__


Text = Annotated[str, AfterValidator(_valid_unicode)]
#: The schema states the whitespace rule (`pattern`: at least one non-space character), so a client that
#: validates against the published schema and the server agree on what a valid query is.
Query = Annotated[
    Text,
    BeforeValidator(_non_blank),
    Field(
        description="The search query; not empty, not only whitespace.",
        min_length=1,
        json_schema_extra={"pattern": r"\S"},
    ),
]
Document = Annotated[
    Text,
    BeforeValidator(_document_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            ],
            "description": "A candidate passage: " + DOCUMENT_SHAPE + ".",
        }
    ),
]


class TEIRerankRequest(BaseModel):
    """text-embeddings-inference's /rerank body."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"query": "What is Deep Learning?", "texts": ["Deep Learning is ...", "hi"]}]
        }
    )

    query: Query
    texts: Annotated[list[Text], Field(min_length=MIN_DOCUMENTS, description="Candidate passages to score.")]
    raw_scores: StrictBool = Field(False, description="Return raw logits instead of sigmoid probabilities.")
    return_text: StrictBool = Field(False, description="Echo each passage in its result.")
    truncate: StrictBool | None = Field(
        None, description="Accepted for compatibility; pairs are always truncated to the server's max_length."
    )
    truncation_direction: Literal["Right", "Left"] = Field(
        "Right",
        description="Which end of a pair over max_length loses tokens: Right cuts the end of the longer "
        "text, Left its start.",
    )


class InfinityRerankRequest(BaseModel):
    """Infinity's /rerank body (infinity_client, LangChain's InfinityRerank): `documents`, not `texts`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"query": "What is Deep Learning?", "documents": ["Deep Learning is ...", "hi"]}]
        }
    )

    query: Query
    documents: Annotated[
        list[Text], Field(min_length=MIN_DOCUMENTS, description="Candidate passages to score.")
    ]
    return_documents: StrictBool = Field(False, description="Echo each document as a string in its result.")
    raw_scores: StrictBool = Field(False, description="Return raw logits instead of sigmoid probabilities.")
    model: str | None = Field(None, description="Accepted for compatibility; the server serves one model.")
    top_n: int | None = Field(None, ge=MIN_TOP_N, description="Return only the best n (all when omitted).")


def _rerank_shape(body: Any) -> str:
    """TEI sends `texts`, Infinity `documents`: the body says which API it speaks."""
    return "infinity" if isinstance(body, dict) and "documents" in body and "texts" not in body else "tei"


#: /rerank's body: text-embeddings-inference's or Infinity's, told apart by their passage field, so a
#: client only ever hears about its own API's fields.
SlashRerankRequest = Annotated[
    Annotated[TEIRerankRequest, Tag("tei")] | Annotated[InfinityRerankRequest, Tag("infinity")],
    Discriminator(_rerank_shape),
]


class TEIRank(BaseModel):
    index: int = Field(description="Position of the passage in the request.")
    score: float
    text: str | None = None


class TEIRerankResponse(RootModel[list[TEIRank]]):
    """Results sorted by score, best first."""

    @classmethod
    def build(
        cls, logits: np.ndarray, texts: Sequence[str], *, raw_scores: bool, return_text: bool
    ) -> TEIRerankResponse:
        scores = logits if raw_scores else sigmoid(logits)
        return cls.model_construct(
            [
                TEIRank.model_construct(
                    index=index, score=float(scores[index]), text=texts[index] if return_text else None
                )
                for index in ranking(scores)
            ]
        )


class RerankRequest(BaseModel):
    """Cohere's rerank body (v1 and v2), as also sent by Jina, Infinity, LangChain and LlamaIndex clients."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "rerank-english-v3.0",
                    "query": "What is the capital of the United States?",
                    "documents": [
                        "Carson City is the capital city of Nevada.",
                        "Washington, D.C. is the capital.",
                    ],
                    "top_n": 1,
                    "return_documents": True,
                }
            ]
        }
    )

    model: str | None = Field(None, description="Accepted for compatibility; the server serves one model.")
    query: Query
    documents: Annotated[list[Document], Field(min_length=MIN_DOCUMENTS, description="Candidate passages.")]
    top_n: int | None = Field(None, ge=MIN_TOP_N, description="Return only the best n (all when omitted).")
    return_documents: StrictBool = Field(False, description="Echo each document as `document.text`.")
    max_tokens_per_doc: int | None = Field(
        None, ge=MIN_TOKENS_PER_DOC, description="Cohere v2: cut each document to this many tokens first."
    )
    max_chunks_per_doc: int | None = Field(
        None, ge=1, description="Cohere v1, accepted for compatibility: documents are truncated, not chunked."
    )
    rank_fields: list[str] | None = Field(
        None,
        description="Cohere v1: object documents rank on these fields, in this order, as `field: value` "
        "lines (documents that are strings rank as they are); without it, on `text`.",
    )
    raw_scores: StrictBool = Field(
        False, description="Infinity: return raw logits instead of sigmoid probabilities."
    )

    @model_validator(mode="before")
    @classmethod
    def _rank_on_fields(cls, data: Any) -> Any:
        """Cohere v1's rank_fields: each object document becomes the named fields' `field: value` lines."""
        if not isinstance(data, dict):
            return data
        fields, documents = data.get("rank_fields"), data.get("documents")
        if not (isinstance(fields, list) and fields and all(isinstance(f, str) for f in fields)):
            return data
        if not isinstance(documents, list):
            return data
        return {
            **data,
            "documents": [fields_text(doc, fields) if isinstance(doc, dict) else doc for doc in documents],
        }


def fields_text(document: dict[str, Any], fields: Sequence[str]) -> Any:
    """The rank_fields of one object document as text; the object itself when it has none of them (the
    document validator then names the problem)."""
    lines = [
        f"{name}: {value if isinstance(value, str) else json.dumps(value)}"
        for name in fields
        if (value := document.get(name)) is not None
    ]
    return "\n".join(lines) if lines else document


class DocumentText(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int = Field(description="Position of the document in the request.")
    relevance_score: float
    document: DocumentText | None = None


class ApiVersion(BaseModel):
    version: str


class BilledUnits(BaseModel):
    search_units: int = 1
    input_tokens: int | None = None


class TokenCounts(BaseModel):
    input_tokens: int
    output_tokens: int = 0


class Meta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: TokenCounts


class Usage(BaseModel):
    """Jina's and Infinity's token accounting."""

    total_tokens: int
    prompt_tokens: int


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult]
    meta: Meta
    usage: Usage

    @classmethod
    def build(
        cls,
        request: RerankRequest,
        logits: np.ndarray,
        *,
        model: str,
        tokens: int,
        api_version: str,
    ) -> RerankResponse:
        scores = logits if request.raw_scores else sigmoid(logits)
        order = ranking(scores)[: request.top_n]
        results = [
            RerankResult.model_construct(
                index=index,
                relevance_score=float(scores[index]),
                document=DocumentText.model_construct(text=request.documents[index])
                if request.return_documents
                else None,
            )
            for index in order
        ]
        return cls.model_construct(
            id=str(uuid.uuid4()),
            model=model,
            results=results,
            meta=Meta.model_construct(
                api_version=ApiVersion.model_construct(version=api_version),
                billed_units=BilledUnits.model_construct(search_units=1, input_tokens=tokens),
                tokens=TokenCounts.model_construct(input_tokens=tokens, output_tokens=0),
            ),
            usage=Usage.model_construct(total_tokens=tokens, prompt_tokens=tokens),
        )


class InfinityRank(BaseModel):
    relevance_score: float
    index: int = Field(description="Position of the document in the request.")
    document: str | None = None


class InfinityRerankResponse(BaseModel):
    """Infinity's answer: results best first, with `object`, `usage` and `created`, as its clients parse."""

    object: Literal["rerank"] = "rerank"
    results: list[InfinityRank]
    model: str
    usage: Usage
    id: str
    created: int

    @classmethod
    def build(
        cls,
        request: InfinityRerankRequest,
        logits: np.ndarray,
        documents: Sequence[str],
        *,
        model: str,
        tokens: int,
    ) -> InfinityRerankResponse:
        """`documents` are those scored: the request's, or its first k under the truncate policy."""
        scores = logits if request.raw_scores else sigmoid(logits)
        results = [
            InfinityRank.model_construct(
                relevance_score=float(scores[index]),
                index=index,
                document=documents[index] if request.return_documents else None,
            )
            for index in ranking(scores)[: request.top_n]
        ]
        return cls.model_construct(
            object="rerank",
            results=results,
            model=model,
            usage=Usage.model_construct(total_tokens=tokens, prompt_tokens=tokens),
            id=f"rerank-{uuid.uuid4().hex}",
            created=int(time.time()),
        )


def ranking(scores: np.ndarray) -> list[int]:
    """Indices best first; equal scores keep request order (a stable sort), so results are deterministic."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable").tolist()


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["loading", "warming_up", "ready", "failed", "draining"]
    reason: str | None = None


class Info(BaseModel):
    model: str
    revision: str
    resolved_revision: str | None
    #: sha256 over the prepared artefact's files: equal on every replica that serves the same bytes.
    artefact_digest: str | None = None
    integrity_check: str | None = None
    backend: str
    execution_providers: list[str]
    quantization: str
    fused_attention: bool | None
    max_length: int
    max_candidates: int
    k_cap_policy: str
    max_batch_tokens: int
    intra_op_threads: int | None
    latency_slo_ms: int
    request_timeout_ms: int
    status: str
    warmup_seconds: float | None
    warmup_kcap_latency_seconds: float | None
    test_model_note: str | None = None

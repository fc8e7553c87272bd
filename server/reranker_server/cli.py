"""`reranker-server serve | prepare | export | make-test-model`: the process edge.

Everything environmental is read here (flags and env vars, once) and passed down as a Settings
object. Heavy imports happen inside the subcommand that needs them, so `--help` is instant and
`serve` never imports torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from reranker_server.config import Settings, SettingsError, add_options, settings_from

EXPORT_FIELDS = ("model", "revision", "cache_dir", "quantize", "backend", "log_format", "log_level")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reranker-server",
        description="Serve a cross-encoder reranker with ONNX Runtime (see docs/server.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="serve the model over HTTP",
        description="Every flag can also be set by the env var shown; a flag wins over its env var.",
    )
    add_options(serve)
    serve.set_defaults(handler=run_serve)

    export = commands.add_parser(
        "export",
        help="prepare a model once: download, export to ONNX, quantise, into the cache",
        description="Fills the cache a pod will use, so serving needs neither the hub nor torch.",
    )
    add_options(export, EXPORT_FIELDS)
    export.set_defaults(handler=run_export)

    prepare = commands.add_parser(
        "prepare",
        help="prepare one recipe into a verified artefact directory (what the operator's Job runs)",
        description="Download, export, fuse, quantise and check a model into --out with a manifest; "
        "`serve --artefact OUT` then serves it without torch and without the hub.",
    )
    add_options(prepare, EXPORT_FIELDS)
    prepare.add_argument("--out", type=Path, required=True, help="the artefact directory to write")
    prepare.add_argument(
        "--termination-log",
        type=Path,
        default=None,
        help="also write the one-line result here (a Job passes /dev/termination-log to the operator)",
    )
    prepare.add_argument(
        "--collect-after-hours",
        type=float,
        default=None,
        help="after success, delete artefacts beside --out that are not --keep and older than this",
    )
    prepare.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="NAME",
        help="an artefact directory beside --out that is still in use (repeat the flag)",
    )
    prepare.set_defaults(handler=run_prepare)

    test_model = commands.add_parser(
        "make-test-model",
        help="write a small seeded BERT cross-encoder (meaningless scores) for tests and offline demos",
    )
    test_model.add_argument("--out", type=Path, required=True, help="directory to write")
    test_model.add_argument("--layers", type=int, default=2, help="transformer layers (default 2)")
    test_model.add_argument("--hidden", type=int, default=32, help="hidden size (default 32)")
    test_model.add_argument("--heads", type=int, default=0, help="attention heads (default hidden/32)")
    test_model.add_argument(
        "--intermediate", type=int, default=0, help="feed-forward size (default 4 x hidden)"
    )
    test_model.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    test_model.add_argument(
        "--architecture",
        choices=["bert", "xlm-roberta"],
        default="bert",
        help="bert (ms-marco-MiniLM's) or xlm-roberta (bge-reranker-v2-m3's); default bert",
    )
    test_model.add_argument("--no-onnx", action="store_true", help="skip writing onnx/model.onnx")
    test_model.set_defaults(handler=run_make_test_model)
    return parser


def settings_or_exit(args: argparse.Namespace) -> Settings:
    try:
        return settings_from(vars(args), os.environ)
    except SettingsError as exc:
        sys.exit(f"reranker-server: {exc}")


def run_serve(args: argparse.Namespace) -> int:
    from reranker_server import logs
    from reranker_server.api import create_app
    from reranker_server.auth import ApiKeyError
    from reranker_server.serve import port_problem, run

    settings = settings_or_exit(args)
    logs.configure(settings.log_format, settings.log_level)
    if (problem := port_problem(settings)) is not None:
        sys.exit(f"reranker-server: {problem}")
    try:
        app = create_app(settings)
    except ApiKeyError as exc:
        line = f"--api-keys-file / RERANKER_API_KEYS_FILE: {exc}"
        if settings.termination_log is not None:
            settings.termination_log.write_text(f"ApiKeysUnusable: {line}")
        sys.exit(f"reranker-server: {line}")
    run(app, settings)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from reranker_server import logs
    from reranker_server.artefact import ModelError
    from reranker_server.preparation.store import ModelStore

    settings = settings_or_exit(args)
    logs.configure(settings.log_format, settings.log_level)
    store = ModelStore(settings.cache_dir, offline=settings.hub_offline)
    try:
        files = store.resolve(
            settings.model, settings.revision, settings.quantize, fuse=settings.backend == "cpu"
        )
    except ModelError as exc:
        print(f"reranker-server export: {exc}", file=sys.stderr)
        return 1
    print(f"model {files.name} is ready to serve ({files.quantization}, fused attention: {files.fused})")
    print(f"graph: {files.graph}\ntokenizer: {files.tokenizer}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from reranker_server import logs
    from reranker_server.artefact import ModelError
    from reranker_server.preparation.collect import collect_garbage
    from reranker_server.preparation.prepare import exit_code_for, prepare, result_line

    settings = settings_or_exit(args)
    logs.configure(settings.log_format, settings.log_level)
    recipe = settings.recipe
    try:
        prepared = prepare(recipe, out=args.out, cache_dir=settings.cache_dir, offline=settings.hub_offline)
    except ModelError as exc:
        line, code = f"{exc.reason}: {exc}", exit_code_for(exc.reason)
        print(f"reranker-server prepare: {line}", file=sys.stderr)
    except Exception as exc:  # a crash a retry may not repeat: say so, and let the Job retry
        logging.getLogger("reranker_server.prepare").exception("preparation crashed")
        line, code = (
            f"PreparationCrashed: {type(exc).__name__} while preparing {recipe.model}; see the log",
            2,
        )
        print(f"reranker-server prepare: {line}", file=sys.stderr)
    else:
        collected = []
        if args.collect_after_hours is not None:
            collected = collect_garbage(
                args.out.parent,
                keep=[args.out.name, *args.keep],
                now=time.time(),
                older_than_s=args.collect_after_hours * 3600,
            )
        line, code = result_line(prepared, collected=collected), 0
        print(line)
    if args.termination_log is not None:
        args.termination_log.write_text(line)
    return code


def run_make_test_model(args: argparse.Namespace) -> int:
    from reranker_server.testmodel import MEANINGLESS_NOTE, ModelShape, make_test_model

    shape = ModelShape(
        layers=args.layers,
        hidden=args.hidden,
        heads=args.heads,
        intermediate=args.intermediate,
        seed=args.seed,
    )
    out = make_test_model(args.out, shape, with_onnx=not args.no_onnx, architecture=args.architecture)
    print(f"wrote {out} ({shape.layers} layers, hidden {shape.hidden}, {shape.attention_heads} heads)")
    print(MEANINGLESS_NOTE)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())

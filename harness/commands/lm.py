"""`regbench lm check DIR`: validate a DNA language-model checkpoint folder before launching a study.

Loads it exactly as the probe and fine-tune plugins do (`models.lm._checkpoint`), prints the architecture,
`params: N` (encoder parameters), the tokenizer's special tokens, and `embed_seq_per_s: X` on a few probe
sequences. `--random-init` builds seeded random weights from a weight-less folder; `--save OUT` writes a loadable
copy (the folder's files plus the weights) and checks that it reloads with identical embeddings.
torch and transformers are imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.limits import ascii_int


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lm", help="DNA language-model checkpoints (validate a download)")
    lm_sub = parser.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")
    check = lm_sub.add_parser("check", help="load a checkpoint folder, embed probe sequences, print what loaded",
                              description="Load a local DNA language-model folder as the probe and fine-tune "
                              "plugins do, embed a few probe sequences and print the architecture, params and "
                              "embed_seq_per_s.", epilog="examples:\n  regbench lm check ~/models/DNABERT-2-117M\n"
                              "  regbench lm check ../shared/lm_checkpoints/dnabert2-tiny --random-init "
                              "--save .regbench/lm/dnabert2-tiny --n 4")  # fmt: skip
    check.add_argument("folder", type=Path, help="local Hugging Face model folder (e.g. DNABERT-2-117M)")
    check.add_argument("--random-init", action="store_true", help="random weights (for a weight-less folder)")
    check.add_argument("--save", type=Path, default=None, metavar="OUT", help="write a loadable copy to OUT")
    check.add_argument("--n", type=ascii_int, default=12, help="probe sequences to embed (50, 200 and 1000 bp)")
    check.add_argument("--pooling", default="mean", help="mean or cls")
    check.add_argument("--max-length", type=ascii_int, default=512, help="tokens per window, special tokens included")
    check.add_argument("--batch-size", type=ascii_int, default=8, help="windows per forward pass")
    check.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    check.add_argument("--seed", type=ascii_int, default=0, help="seed of the random weights and probe sequences")
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.paths import input_dir
    from models.lm._check import check

    input_dir(args.folder, "model folder")

    for line in check(args.folder, args.random_init, args.save, args.n, args.pooling, args.max_length,
                      args.batch_size, args.device, args.seed):  # fmt: skip
        print(line, flush=True)
    return 0

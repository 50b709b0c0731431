"""Size caps and version pins shared by the model-file sources (docs/threats.md M1-M12)."""

from __future__ import annotations

import re

MB = 1024 * 1024

#: Largest JSON member we read from an archive (e.g. a `.keras` `config.json`).
MEMBER_CAP = 256 * MB
#: Largest total of bytes read from one archive.
ARCHIVE_TOTAL_CAP = 1024 * MB
#: Most members an archive may list.
ARCHIVE_MAX_MEMBERS = 100_000
#: safetensors: largest header (the format's own limit).
SAFETENSORS_HEADER_CAP = 100 * MB
#: safetensors: most tensors (plus metadata items) in one header.
SAFETENSORS_MAX_ENTRIES = 65_536
#: Largest offset or length accepted in ONNX external-data records.
EXTERNAL_DATA_CAP = 2**40
#: Tensors up to this many elements get their values loaded eagerly.
SMALL_TENSOR_NUMEL = 1 << 16
#: Address-space limit of sandbox workers, and their wall-clock timeout.
SANDBOX_MEMORY = 4096 * MB
SANDBOX_TIMEOUT_S = 60.0

#: ONNX: nodes that inlining model-local functions may add before shape inference is
#: skipped (inference costs ~25 us per inlined node here: 100k is about 2.5 s).
ONNX_FUNCTION_NODE_BUDGET = 100_000
#: ONNX: a model without local functions and at most this many nodes is inferred in the
#: main process (linear work, about 1 s at this size; a child start costs ~1.3 s here);
#: others in the sandbox child. Real models are far below it (BERT-base ~2k nodes).
ONNX_IN_PROCESS_NODES = 50_000
#: ONNX shape inference in the child: base wall-clock limit and address-space limit.
ONNX_INFER_TIMEOUT_S = 8.0
ONNX_INFER_MEMORY = 512 * MB

MIN_TORCH = (2, 10)
MIN_ONNX = (1, 21, 0)


def version_tuple(version: str) -> tuple[int, ...]:
    """`"2.13.0+cpu"` → `(2, 13, 0)`; stops at the first non-numeric part."""
    parts: list[int] = []
    for piece in version.split("+")[0].split("."):
        m = re.match(r"\d+", piece)
        if m is None:
            break
        parts.append(int(m.group()))
        if m.end() != len(piece):
            break
    return tuple(parts)


def check_torch_version(version: str | None = None) -> None:
    """Refuse untrusted `torch.load` on torch older than 2.10 (CVE-2025-32434, CVE-2026-24747)."""
    from deepscope.errors import UnsafeModelError

    if version is None:
        import torch

        version = str(torch.__version__)
    if version_tuple(version) < MIN_TORCH:
        raise UnsafeModelError(
            f"torch {version} cannot load untrusted checkpoints safely "
            "(weights_only bypasses fixed in 2.10): pip install 'torch>=2.10'"
        )


def check_onnx_version(version: str | None = None) -> None:
    """Refuse onnx older than 1.21.0 (external-data traversal CVEs fixed there)."""
    from deepscope.errors import OptionalDependencyError

    if version is None:
        import onnx

        version = str(onnx.__version__)
    if version_tuple(version) < MIN_ONNX:
        raise OptionalDependencyError(
            f"onnx {version} has known external-data vulnerabilities: "
            "pip install 'onnx>=1.21.0' (or 'deepscope[onnx]')"
        )

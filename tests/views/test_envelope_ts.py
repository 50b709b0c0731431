"""The frontend's envelope decoder (frontend/src/wire/envelope.ts) on envelopes written by
Python: values, shapes, and a typed array over the fetched buffer itself (no copy).
Runs the TypeScript under Node (transpiled by the frontend's own TypeScript)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deepscope.views.envelope import encode

REPO = Path(__file__).resolve().parents[2]
TS = REPO / "frontend" / "node_modules" / "typescript"
NODE = shutil.which("node")

SCRIPT = r"""
const fs = require('fs');
const ts = require(process.argv[1]);
const src = fs.readFileSync(process.argv[2], 'utf8');
const js = ts.transpileModule(src, { compilerOptions: {
  module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
const mod = { exports: {} };
new Function('module', 'exports', 'require', js)(mod, mod.exports, require);
const { decodeArray, halfToFloat } = mod.exports;
const out = [];
for (const hex of JSON.parse(fs.readFileSync(0, 'utf8'))) {
  const bytes = Buffer.from(hex, 'hex');
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  try {
    const a = decodeArray(buffer);
    const values = a.dtype === 'float16' ? Array.from(a.data, halfToFloat) : Array.from(a.data);
    out.push({ dtype: a.dtype, shape: a.shape, values, sameBuffer: a.data.buffer === buffer,
               ctor: a.data.constructor.name });
  } catch (e) { out.push({ error: String(e.message) }); }
}
process.stdout.write(JSON.stringify(out));
"""


@pytest.mark.skipif(NODE is None or not TS.exists(), reason="needs node and frontend/node_modules")
def test_typescript_decoder_reads_python_envelopes_in_place() -> None:
    arrays = [
        np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
        np.array([[1, 255], [0, 7]], dtype=np.uint8),
        np.array([-5, 2**31 - 1], dtype=np.int32),
        np.array([0.5, -2.0, 65504.0], dtype=np.float16),
        np.arange(3 * 5 * 2, dtype=np.float32).reshape(3, 5, 2),  # odd header: padded
    ]
    blobs = [encode(a) for a in arrays]
    blobs += [b"XSAR" + blobs[0][4:], blobs[0][:-4]]  # bad magic, cut short
    assert NODE is not None
    proc = subprocess.run(
        [NODE, "-e", SCRIPT, str(TS), str(REPO / "frontend/src/wire/envelope.ts")],
        input=json.dumps([b.hex() for b in blobs]),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    ctors = {"float32": "Float32Array", "uint8": "Uint8Array", "int32": "Int32Array",
             "float16": "Uint16Array"}  # fmt: skip
    for arr, got in zip(arrays, out, strict=False):
        assert got["dtype"] == arr.dtype.name and got["shape"] == list(arr.shape)
        assert got["values"] == arr.ravel().astype(float).tolist()
        assert got["sameBuffer"] is True and got["ctor"] == ctors[arr.dtype.name]
    assert "bad magic" in out[-2]["error"] and "header says" in out[-1]["error"]

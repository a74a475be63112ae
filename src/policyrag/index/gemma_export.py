"""EmbeddingGemma's whole embedding pipeline as one int8 ONNX graph, made once at fetch time.

fp32 torch embeds a 320-character chunk in ~0.3 s of CPU; the graph quantised to int8 (weights
per channel, activations per batch) in ~0.17 s, and it needs neither torch nor
sentence-transformers to run. The export itself needs torch, onnx and onnxscript:
`pip install 'policyrag[export]'`. The graph is kept only when its vectors agree with the fp32
model's on a few texts (cosine at least MIN_COSINE); the marker written last records them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from policyrag.cachefiles import sha256_of
from policyrag.index import gemma_fetch
from policyrag.index.gemma_model import MAX_TOKENS, NAME, PROMPTS, Layout
from policyrag.index.tokenized_onnx import TokenizedOnnxEmbedder

# Measured 0.985-0.990 with every matrix product in int8 (the 0.99 of MODELS.md was on shorter
# texts); keeping the MLP down-projections in fp32 gives 0.994-0.997 but costs 30% more time.
MIN_COSINE = 0.98
CHECK_TEXTS = [
    ("passage", "今年政府工作的主要任务是稳增长、促改革、调结构、惠民生、防风险。"),
    ("passage", "丽水市将加快建设生态文明示范区，推进山区共同富裕，打造“两山”转化示范。"),
    ("passage", "The district will cut fees for small businesses and speed up approvals."),
    ("query", "市里在文化和旅游方面有什么打算?"),
    ("query", "How does Luqiao support small businesses?"),
]


def export(where: Layout, say=gemma_fetch._say) -> dict:
    try:
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it; fail before loading)
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise gemma_fetch.FetchError(
            f"exporting EmbeddingGemma to ONNX needs torch, onnx and onnxscript ({exc}): "
            "pip install 'policyrag[export]', then fetch again (the download is kept)") from exc
    start = time.monotonic()
    model = SentenceTransformer(str(where.folder), device="cpu",
                                model_kwargs={"attn_implementation": "eager"}).eval()
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=where.root))
    try:
        fp32 = work / "fp32.onnx"
        say("exporting the embedding pipeline to ONNX (a few minutes)")
        _to_onnx(torch, model, fp32)
        say("quantising to int8")
        int8 = work / where.graph.name
        quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
        cosines = _agreement(model, int8, where)
        if min(cosines) < MIN_COSINE:
            raise gemma_fetch.FetchError(
                f"the int8 graph's vectors differ from the fp32 model's (cosine {min(cosines):.3f}"
                f" < {MIN_COSINE}); not kept. Check the torch / onnxruntime versions")
        os.replace(int8, where.graph)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {"model": NAME, "graph_size": where.graph.stat().st_size,
              "graph_sha256": sha256_of(where.graph, "checking", False), "joined_sha256": gemma_fetch.JOINED_SHA256,
              "weights_sha256": gemma_fetch.WEIGHTS_SHA256,
              "cosine_to_fp32": [round(c, 4) for c in cosines],
              "torch": torch.__version__, "export_seconds": round(time.monotonic() - start)}
    gemma_fetch.write_marker(where, record)
    say(f"EmbeddingGemma ready: {where.graph} (cosine to fp32 {min(cosines):.3f}–"
        f"{max(cosines):.3f})")
    return record


def _to_onnx(torch, model, path: Path) -> None:
    class Pipeline(torch.nn.Module):
        """Token ids in, unit vectors out: transformer, mean pooling, two dense layers, norm."""

        def __init__(self, st) -> None:
            super().__init__()
            self.st = st

        def forward(self, input_ids, attention_mask):
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            return self.st(features)["sentence_embedding"]

    sample = model.tokenizer([PROMPTS.passage + "示例", "example"], padding=True,
                             return_tensors="pt")
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("seq", min=2, max=2048)
    with torch.no_grad():
        torch.onnx.export(Pipeline(model).eval(), (sample["input_ids"], sample["attention_mask"]),
                          str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["sentence_embedding"], dynamo=True, external_data=True,
                          optimize=True, dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                         "attention_mask": {0: batch, 1: seq}})


def _agreement(model, graph: Path, where: Layout) -> list[float]:
    """Cosine between the graph's and the fp32 model's vectors for each check text."""
    embedder = TokenizedOnnxEmbedder(graph, where.folder / "tokenizer.json", NAME, PROMPTS,
                                     MAX_TOKENS)
    out = []
    for kind, text in CHECK_TEXTS:
        prompt = PROMPTS.query if kind == "query" else PROMPTS.passage
        ref = model.encode([text], prompt=prompt, normalize_embeddings=True)[0]
        got = embedder.encode([text], kind)[0]
        out.append(float(np.dot(ref, got)))
    return out

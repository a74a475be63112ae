"""Lexical retrieval: BM25 over jieba tokens of simplified text.

Place names and the reports' own quoted slogans (“双招双引”, “七优享”) are added to the
segmenter's dictionary so that they stay whole tokens instead of being cut into common words.
A slogan token is followed by the words it is made of, so that a report's “有为政府” still
answers a question about 政府.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import re
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from policyrag.script import to_simplified

# Bumped whenever `tokenize` cuts the same text differently: segments record it (through
# segments.lexicon_digest), and a full compaction re-tokenises those written before.
TOKENS_VERSION = 2  # 2: slogan tokens are followed by their parts

_QUOTED = re.compile(r"[“\"「『]([\u4e00-\u9fff\d]{2,8})[”\"」』]")
_TOKEN_OK = re.compile(r"[\u4e00-\u9fff\w]")
STOPWORDS = frozenset(
    "的 了 和 与 及 是 在 为 以 对 把 将 要 等 中 上 下 也 都 而 并 或 之 其 这 那 有 就 着 于 由 "  # noqa: SIM905
    "被 从 到 向 让 使 各 个 们 更 又 还 再 很 所 以来 进一步 全面 加快 推进 推动 坚持 深入 "
    "什么 如何 怎么 哪些 怎样 吗 呢 the a an of to and in for on is are what how which".split()
)


# A few English policy words (or stems) and their Chinese forms, so an English question still
# gets lexical evidence, for ranking passages and for picking sentences (the dense model is
# multilingual, but weakly so).
GLOSSARY = {
    "invest": "投资", "private": "民间 民营", "enterprise": "企业", "business": "企业 营商",
    "talent": "人才", "attract": "招引 招商 引进", "industr": "产业 工业", "reform": "改革",
    "innovat": "创新", "technolog": "科技", "project": "项目", "ecolog": "生态",
    "environment": "环境 生态", "livelihood": "民生", "welfare": "民生 福祉",
    "public service": "公共服务", "common prosperity": "共同富裕", "prosperity": "富裕",
    "income": "增收", "rural": "乡村 农村", "urban": "城市 城乡", "city": "城市",
    "governance": "治理", "safety": "安全 平安", "security": "安全 平安", "party": "党建",
    "open": "开放", "consum": "消费", "education": "教育", "health": "医疗 健康",
    "transport": "交通", "digital": "数字", "culture": "文化", "tourism": "文旅",
    "market": "市场", "economy": "经济", "economic": "经济", "growth": "增长 发展",
    "develop": "发展", "priorit": "重点", "focus": "聚焦 重点", "five-year": "十四五",
    "14th": "十四五", "infrastructure": "基础设施", "finance": "金融", "trade": "商贸 外贸",
    "manufactur": "制造", "agricultur": "农业", "employment": "就业", "housing": "住房",
    "elderly": "养老", "medical": "医疗", "pollution": "污染", "carbon": "碳",
}


def glossary_terms(text: str) -> list[str]:
    """The Chinese forms of the glossary's words in a mostly English `text` (none otherwise:
    a Chinese question has its own words)."""
    if len(re.findall(r"[A-Za-z]", text)) <= 3 * len(re.findall(r"[\u4e00-\u9fff]", text)):
        return []
    lowered = text.lower()
    return [zh for en, zh in GLOSSARY.items() if en in lowered]


def slogans(texts: Iterable[str]) -> list[str]:
    """Short quoted phrases of a corpus: its own policy terms."""
    found = {m.group(1) for t in texts for m in _QUOTED.finditer(to_simplified(t))}
    return sorted(found)


@lru_cache(maxsize=1)
def _base_freq() -> tuple[dict[str, int], int]:
    """jieba's dictionary plus every place name, as (word frequencies, total).

    Made once and kept in the cache folder: jieba's own cache takes 0.65 s to read through
    marshal.load on a file, the same data from bytes 0.17 s, and the place names come on top.
    """
    import jieba

    from policyrag.config import cache_dir
    from policyrag.ingest.gazetteer import places

    names = sorted({n for p in places() for n in (p.short, p.name)})
    key = hashlib.sha1("\n".join([jieba.__version__, *names]).encode()).hexdigest()[:16]
    path = cache_dir() / f"jieba-{key}.marshal"
    try:
        freq, total = marshal.loads(path.read_bytes())
        return freq, total
    except (OSError, EOFError, ValueError, TypeError):
        pass
    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    tk.initialize()
    for name in names:
        tk.add_word(name, freq=2000)
    _write_cache(path, marshal.dumps((tk.FREQ, tk.total)))
    return tk.FREQ, tk.total


def _write_cache(path: Path, data: bytes) -> None:
    """Best effort: a read-only home only costs the next process the slow start."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass


@lru_cache(maxsize=8)
def _tokenizer(lexicon: tuple[str, ...]):
    import jieba

    jieba.setLogLevel(logging.WARNING)
    freq, total = _base_freq()
    tk = jieba.Tokenizer()
    # Each lexicon gets its own copy, so one index's slogans never leak into another's.
    tk.FREQ, tk.total, tk.initialized = dict(freq), total, True
    for word in lexicon:
        tk.add_word(word, freq=5000)
    return tk


def tokenize(text: str, lexicon: tuple[str, ...] = ()) -> list[str]:
    """BM25 tokens of `text`. A slogan of `lexicon` is kept whole and followed by its parts:
    mined from the collection, slogans run up to 8 characters (“全面建成小康社会”), and a
    whole slogan alone would hide the words a question shares with it."""
    tokens = _cut(text, lexicon)
    if not lexicon:
        return tokens
    slogans = _slogan_set(lexicon)
    return [part for t in tokens for part in ((t, *_parts(t)) if t in slogans else (t,))]


def _cut(text: str, lexicon: tuple[str, ...]) -> list[str]:
    tokens = (t.strip().lower() for t in _tokenizer(lexicon).lcut(to_simplified(text), HMM=True))
    return [t for t in tokens if t and _TOKEN_OK.search(t) and t not in STOPWORDS]


@lru_cache(maxsize=8)
def _slogan_set(lexicon: tuple[str, ...]) -> frozenset[str]:
    return frozenset(lexicon)


@lru_cache(maxsize=65536)
def _parts(slogan: str) -> tuple[str, ...]:
    """The words the plain dictionary cuts a slogan into, the slogan itself left out."""
    return tuple(t for t in _cut(slogan, ()) if t != slogan)


class BM25:
    """Okapi BM25 over pre-tokenised chunks, scored through an inverted index.

    The scores are those of rank_bm25's BM25Okapi (k1 1.5, b 0.75, a term in more than half
    the chunks gets a quarter of the mean idf instead of a negative one), but a query only
    touches the chunks that contain its terms: 100k chunks answer in milliseconds, not the
    third of a second a loop over every chunk takes.
    """

    def __init__(self, tokenized: Sequence[list[str] | str], k1: float = 1.5, b: float = 0.75,
                 epsilon: float = 0.25) -> None:
        """`tokenized`: each chunk's tokens, as a list or as one space-separated string (as the
        chunk store keeps them: a million chunks' tokens as lists of strings take ~8 GB)."""
        from scipy.sparse import csr_matrix

        self.size = len(tokenized)
        # A new term gets the next id, looked up at C speed by map() below; every occurrence
        # is appended and the duplicates summed by scipy, not counted in Python.
        vocab: defaultdict[str, int] = defaultdict()
        vocab.default_factory = vocab.__len__
        term_ids = array("i")
        row_ends = array("q", [0])
        for tokens in tokenized:
            term_ids.extend(map(vocab.__getitem__, tokens.split() if isinstance(tokens, str)
                                else tokens))
            row_ends.append(len(term_ids))
        ids = np.frombuffer(term_ids, dtype=np.intc) if term_ids else np.zeros(0, np.intc)
        # chunks x terms, turned into one column (a posting list) per term
        matrix = csr_matrix((np.ones(len(ids), np.float32), ids, np.frombuffer(row_ends, np.int64)),
                            shape=(self.size, len(vocab)))
        matrix.sum_duplicates()
        lengths = np.asarray(matrix.sum(axis=1), np.float32).ravel()
        postings = matrix.tocsc()
        df = np.diff(postings.indptr)
        idf = np.log(self.size - df + 0.5) - np.log(df + 0.5)
        if len(idf):
            idf[idf < 0] = epsilon * float(idf.mean())
        avgdl = float(lengths.mean()) if self.size and lengths.any() else 1.0
        self._norm = k1 * (1 - b + b * lengths / avgdl)
        # Each posting's term-frequency part of the score, tf(k1+1)/(tf+norm), made once here
        # in place of the counts: a query then multiplies by the idf and adds, where at a
        # million chunks gathering the norms and dividing took most of its time.
        tf = postings.data
        tf *= (k1 + 1) / (tf + self._norm[postings.indices])
        self._k1, self._vocab, self._idf, self._csc = k1, dict(vocab), idf, postings

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        out = np.zeros(self.size, dtype=np.float32)
        indptr, docs, weights = self._csc.indptr, self._csc.indices, self._csc.data
        for term in query_tokens:  # a repeated term counts again, as in rank_bm25
            j = self._vocab.get(term)
            if j is None:
                continue
            start, end = indptr[j], indptr[j + 1]
            out[docs[start:end]] += np.float32(self._idf[j]) * weights[start:end]
        return out

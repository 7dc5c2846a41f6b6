from collections import Counter

import pytest
import torch

from amla.toolkit import data
from amla.transformers.text import (
    BPETokenizer,
    CharTokenizer,
    TokenWindows,
    load_corpus,
    merge_pair,
    pair_counts,
    train_bpe,
)


def test_load_corpus_reads_the_shared_tiny_shakespeare(capsys):
    corpus = load_corpus(download=False)  # the root conftest points AMLA_DATA at ../shared/data
    assert corpus.name == "tinyshakespeare"
    assert len(corpus.text) == 1_115_394 and corpus.text.startswith("First Citizen:")
    assert "Corpus in use: tinyshakespeare" in capsys.readouterr().out


def test_load_corpus_falls_back_when_missing_and_download_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AMLA_DATA", str(tmp_path))  # an empty data directory: the file is missing
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # and not in the user's cache either
    monkeypatch.delenv("AMLA_OFFLINE", raising=False)  # the suite forbids downloads; here the network itself fails

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    corpus = load_corpus(download=True)
    assert corpus.name == "python-reference"
    assert len(corpus.text) > 100_000 and "Python" in corpus.text
    out = capsys.readouterr().out
    assert "Corpus in use: python-reference" in out and "download failed" in out
    assert not any(tmp_path.rglob("*.part"))


def test_char_tokenizer_round_trip_and_errors():
    tok = CharTokenizer("hello world")
    assert tok.vocab_size == 8 and tok.chars[0] == " "
    ids = tok.encode("low del")
    assert ids.dtype == torch.long and tok.decode(ids) == "low del" and tok.decode(ids.tolist()) == "low del"
    with pytest.raises(ValueError, match="not in the tokenizer"):
        tok.encode("xyz")
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer("")


def test_pair_counts_and_merge_pair():
    assert pair_counts([5, 5, 5]) == {(5, 5): 2}
    assert pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert pair_counts([4]) == {}
    assert merge_pair([5, 5, 5], (5, 5), 9) == [9, 5]
    assert merge_pair([5, 5, 5, 5], (5, 5), 9) == [9, 9]
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]
    assert merge_pair([2, 1], (1, 2), 9) == [2, 1]


def test_bpe_learns_frequent_pairs_and_round_trips():
    text = "the cat sat on the mat; the hat is that hat. " * 5
    merges = train_bpe(text, 20)
    assert merges[0] in {(ord("a"), ord("t")), (ord("t"), ord("h")), (ord("h"), ord("e"))}
    tok = BPETokenizer(merges)
    assert tok.vocab_size == 256 + len(merges)
    for sample in [text, "a new text, with unseen words: zebra!", "caf\u00e9 \u2192 na\u00efve", ""]:
        assert tok.decode(tok.encode(sample)) == sample
    assert len(tok.encode(text)) < len(text.encode("utf-8")) / 2  # compresses the text it was trained on
    assert train_bpe("abcd", 10) == []  # no pair occurs twice: nothing to merge


def test_bpe_encode_applies_merges_in_learned_order():
    # merge 0: (a, b) -> 256; merge 1: (b, c) -> 257. "abc" must use the earlier merge, (a, b), first.
    tok = BPETokenizer([(97, 98), (98, 99)])
    assert tok.encode("abc") == [256, 99]
    assert tok.encode("bc") == [257]


def test_token_windows():
    ids = torch.arange(20)
    windows = TokenWindows(ids, 4)
    assert len(windows) == 16
    x, y = windows.collate([0, 3])
    assert x.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6]] and y.tolist() == [[1, 2, 3, 4], [4, 5, 6, 7]]
    tx, ty = windows.tiles()
    assert tx.shape == (4, 4) and tx[1].tolist() == [4, 5, 6, 7] and ty[-1, -1].item() == 16
    with pytest.raises(ValueError, match="more than block_size"):
        TokenWindows(torch.arange(4), 4)


# --- the hooks: train_bpe and BPETokenizer count and merge with the functions they are given -------------------


def _train_bpe_before_the_hooks(text, n_merges):
    """train_bpe as it was before it took pair_counts_fn and merge_pair_fn: the default must not change."""
    ids, merges = list(text.encode("utf-8")), []
    for i in range(n_merges):
        counts = pair_counts(ids)
        if not counts:
            break
        best = max(counts, key=counts.__getitem__)
        if counts[best] < 2:
            break
        merges.append(best)
        ids = merge_pair(ids, best, 256 + i)
    return merges


def _loop_counts(ids):  # a student's pair_counts
    counts = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def _loop_merge(ids, pair, new_id):  # a student's merge_pair
    out, skip = [], False
    for i, t in enumerate(ids):
        if skip:
            skip = False
        elif i + 1 < len(ids) and (t, ids[i + 1]) == tuple(pair):
            out.append(new_id)
            skip = True
        else:
            out.append(t)
    return out


def _reversed_counts(ids):  # right counts, keys in another order, zeros left in: only the counts may matter
    counts = Counter(zip(ids, ids[1:]))
    counts.subtract({(0, 0): 0})
    return dict(reversed(list(counts.items())))


_TEXTS = [
    ("shakespeare", None, 120),
    ("repeats", "aaaa bbbb aaaa abab " * 6 + "caf\u00e9 \u2192 na\u00efve " * 3, 40),
    ("ties", "abcdabcd" * 3, 10),
]


@pytest.fixture(scope="module")
def texts():
    corpus = load_corpus(download=False, verbose=False).text[:4_000]
    return {name: (corpus if text is None else text, n) for name, text, n in _TEXTS}


@pytest.mark.parametrize("name", [t[0] for t in _TEXTS])
def test_train_bpe_default_is_unchanged_and_the_package_functions_through_the_hooks_give_the_same(name, texts):
    text, n = texts[name]
    before = _train_bpe_before_the_hooks(text, n)
    assert train_bpe(text, n) == before
    assert train_bpe(text, n, pair_counts_fn=pair_counts, merge_pair_fn=merge_pair) == before
    assert train_bpe(text, n, pair_counts_fn=_loop_counts, merge_pair_fn=_loop_merge) == before
    assert train_bpe(text, n, pair_counts_fn=_reversed_counts) == before  # ties: the first pair in the text


@pytest.mark.parametrize("name", [t[0] for t in _TEXTS])
def test_bpe_tokenizer_encodes_the_same_through_the_hooks(name, texts):
    text, n = texts[name]
    merges = train_bpe(text, n)
    plain = BPETokenizer(merges)
    hooked = [BPETokenizer(merges, pair_counts_fn=pair_counts, merge_pair_fn=merge_pair),
              BPETokenizer(merges, pair_counts_fn=_loop_counts, merge_pair_fn=_loop_merge),
              BPETokenizer(merges, pair_counts_fn=_reversed_counts)]
    for sample in [text, text[::-1], "a new text, with unseen words: zebra!", "x", ""]:
        ids = plain.encode(sample)
        assert all(tok.encode(sample) == ids for tok in hooked)
        assert plain.decode(ids) == sample


def test_bpe_hooks_are_used():
    calls = []

    def counting(ids):
        calls.append("count")
        return pair_counts(ids)

    def merging(ids, pair, new_id):
        calls.append("merge")
        return merge_pair(ids, pair, new_id)

    merges = train_bpe("abab abab", 2, pair_counts_fn=counting, merge_pair_fn=merging)
    assert calls.count("merge") == len(merges) == 2 and calls.count("count") >= 2
    calls.clear()
    assert BPETokenizer(merges, pair_counts_fn=counting, merge_pair_fn=merging).encode("abab") == [257]
    assert calls == ["count", "merge", "count", "merge"]


def test_bpe_bad_input_gives_one_line_errors():
    with pytest.raises(TypeError,
                       match=r"^train_bpe: pair_counts_fn must be a function like pair_counts\(ids\) -> dict or None, got int$"):
        train_bpe("abab", 2, pair_counts_fn=3)
    with pytest.raises(TypeError, match=r"^BPETokenizer: merge_pair_fn must be a function like merge_pair"):
        BPETokenizer([], merge_pair_fn="merge")
    with pytest.raises(TypeError, match=r"^train_bpe: text must be a str, got bytes$"):
        train_bpe(b"abab", 2)
    with pytest.raises(ValueError, match=r"^train_bpe: n_merges must be an int >= 0, got -1$"):
        train_bpe("abab", -1)
    with pytest.raises(TypeError, match=r"^train_bpe: pair_counts_fn must return a dict \{\(a, b\): count\}, got list$"):
        train_bpe("abab", 2, pair_counts_fn=lambda ids: list(zip(ids, ids[1:])))
    with pytest.raises(TypeError, match=r"^train_bpe: merge_pair_fn must return a list of ids, got tuple$"):
        train_bpe("abab", 2, merge_pair_fn=lambda ids, pair, new_id: tuple(merge_pair(ids, pair, new_id)))
    with pytest.raises(ValueError, match=r"^BPETokenizer.encode: merging \(97, 98\) did not shorten the list of 4 ids"):
        BPETokenizer([(97, 98)], merge_pair_fn=lambda ids, pair, new_id: list(ids)).encode("abab")  # not an endless loop
    with pytest.raises(ValueError, match=r"^BPETokenizer: merge 1 must be a pair of ids below 257 .*got \(300, 5\)$"):
        BPETokenizer([(97, 98), (300, 5)])
    with pytest.raises(ValueError, match=r"^BPETokenizer.decode: ids \[999\] are not in the vocabulary of 256$"):
        BPETokenizer([]).decode([97, 999])

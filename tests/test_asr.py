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

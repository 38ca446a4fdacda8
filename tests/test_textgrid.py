from pathlib import Path

import pytest

from vqspeech import phones
from vqspeech.data.textgrid import (
    Interval,
    TextGridError,
    fit_to_duration,
    read_phones,
    write_phones,
)

from .conftest import write_grid


def test_round_trip(tmp_path: Path):
    intervals = [
        Interval(0.0, 0.1234567, "sil"),
        Interval(0.1234567, 0.3, "DH"),
        Interval(0.3, 0.41, "AH"),
        Interval(0.41, 0.9, "sil"),
    ]
    path = tmp_path / "u.TextGrid"
    write_phones(path, intervals, 0.9)
    back = read_phones(path)
    assert back.duration == pytest.approx(0.9)
    assert back.labels == ["sil", "DH", "AH", "sil"]
    for a, b in zip(back.intervals, intervals, strict=True):
        assert a.start == pytest.approx(b.start, abs=1e-9)
        assert a.end == pytest.approx(b.end, abs=1e-9)


MFA_TEXTGRID = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 1.0
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 1.0
        intervals: size = 1
        intervals [1]:
            xmin = 0.2
            xmax = 0.7
            text = "the"
    item [2]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 1.0
        intervals: size = 3
        intervals [1]:
            xmin = 0.2
            xmax = 0.4
            text = "DH"
        intervals [2]:
            xmin = 0.4
            xmax = 0.7
            text = "AH0"
        intervals [3]:
            xmin = 0.7
            xmax = 0.8
            text = "spn"
"""


def test_reads_mfa_layout_with_stress_and_implicit_silence(tmp_path: Path):
    path = tmp_path / "p225_001.TextGrid"
    path.write_text(MFA_TEXTGRID)
    alignment = read_phones(path)
    # MFA 2.x leaves silences out; they come back as `sil`, stress digits are stripped.
    assert alignment.labels == ["sil", "DH", "AH", "spn", "sil"]
    assert alignment.intervals[0] == Interval(0.0, 0.2, "sil")
    assert alignment.intervals[-1] == Interval(0.8, 1.0, "sil")
    assert alignment.duration == 1.0


def test_unparseable_textgrid_names_file(tmp_path: Path):
    path = tmp_path / "broken.TextGrid"
    path.write_text("this is not\na textgrid\n")
    with pytest.raises(TextGridError, match=r"broken\.TextGrid: not a readable TextGrid"):
        read_phones(path)


def test_missing_phone_tier_names_file(tmp_path: Path):
    path = tmp_path / "words_only.TextGrid"
    path.write_text(MFA_TEXTGRID.replace('name = "phones"', 'name = "segments"'))
    with pytest.raises(TextGridError, match=r"words_only\.TextGrid: no 'phones' tier"):
        read_phones(path)


def test_unknown_label_names_file_and_label(tmp_path: Path):
    path = tmp_path / "odd.TextGrid"
    path.write_text(MFA_TEXTGRID.replace('"AH0"', '"QX1"'))
    with pytest.raises(TextGridError, match=r"odd\.TextGrid: unknown phone labels \['QX1'\]"):
        read_phones(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(TextGridError, match="not found"):
        read_phones(tmp_path / "nope.TextGrid")


def test_fit_to_duration_clips_and_extends():
    ivs = [Interval(0, 0.2, "sil"), Interval(0.2, 0.5, "AH"), Interval(0.5, 0.9, "sil")]
    clipped = fit_to_duration(ivs, 0.7)
    assert clipped[-1] == Interval(0.5, 0.7, "sil")
    dropped = fit_to_duration(ivs, 0.45)  # the last interval starts after the audio ends
    assert dropped == [Interval(0, 0.2, "sil"), Interval(0.2, 0.45, "AH")]
    extended = fit_to_duration(ivs, 1.2)
    assert extended[-1] == Interval(0.5, 1.2, "sil")
    assert [iv.label for iv in extended] == ["sil", "AH", "sil"]


def test_phone_normalization():
    assert len(phones.ARPABET) == 39
    assert phones.normalize("AH0") == "AH"
    assert phones.normalize("ih1") == "IH"
    assert phones.normalize("") == "sil"
    assert phones.normalize("SIL") == "sil"
    assert phones.normalize("sp") == "sp"
    assert phones.from_flite("pau") == "sil"
    assert phones.from_flite("ax") == "AH"
    assert phones.from_flite("zh") == "ZH"
    with pytest.raises(phones.UnknownPhoneError):
        phones.normalize("AX")
    with pytest.raises(phones.UnknownPhoneError):
        phones.from_flite("h#")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", r"empty file \(0 bytes\)"),
        (b"\n  \r\n", r"empty file \(only whitespace\)"),
        (MFA_TEXTGRID.encode("utf-16-le"), r"UTF-16 text without a byte-order mark"),
        (MFA_TEXTGRID.encode("utf-16-be"), r"UTF-16 text without a byte-order mark"),
        (MFA_TEXTGRID.replace('"the"', '"caf\xe9"').encode("latin-1"), r"neither UTF-8 nor"),
        (MFA_TEXTGRID[:60].encode(), r"not a readable TextGrid \(it ends before its tiers"),
    ],
    ids=["empty", "whitespace", "utf16le-no-bom", "utf16be-no-bom", "latin1", "header-only"],
)
def test_malformed_file_says_what_is_wrong(tmp_path: Path, content: bytes, problem: str):
    path = tmp_path / "bad.TextGrid"
    path.write_bytes(content)
    with pytest.raises(TextGridError, match=rf"bad\.TextGrid: {problem}") as err:
        read_phones(path)
    assert "IndexError" not in str(err.value)


def test_utf16_with_a_bom_is_read(tmp_path: Path):
    path = tmp_path / "praat.TextGrid"
    path.write_bytes(MFA_TEXTGRID.encode("utf-16"))  # what Praat itself writes
    assert read_phones(path).labels == ["sil", "DH", "AH", "spn", "sil"]


def test_unreadable_file_is_a_textgrid_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An I/O error is a bad file like any other (on_error: skip lists it), not a crash."""
    path = write_grid(tmp_path / "a.TextGrid", 1.0)

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(
        TextGridError, match=r"a\.TextGrid: unreadable TextGrid \(Permission denied\)"
    ):
        read_phones(path)


def test_grid_starting_after_zero_is_silence_before_its_start(tmp_path: Path):
    """A TextGrid whose xmin is after 0 s: the audio before it is silence, not its first phone."""
    path = tmp_path / "late.TextGrid"
    path.write_text(MFA_TEXTGRID.replace("xmin = 0\n", "xmin = 0.2\n"))
    alignment = read_phones(path)
    assert alignment.intervals[0] == Interval(0.0, 0.2, "sil")
    assert alignment.labels == ["sil", "DH", "AH", "spn", "sil"]


@pytest.mark.parametrize("labels", [[], ["", ""]], ids=["no intervals", "blank intervals"])
def test_phone_tier_without_a_label_is_an_error(tmp_path: Path, labels: list[str]):
    """Not 100 % silence: a phones tier with nothing in it says so."""
    path = tmp_path / "empty.TextGrid"
    write_phones(path, [Interval(i * 0.5, (i + 1) * 0.5, lab) for i, lab in enumerate(labels)], 1.0)
    with pytest.raises(TextGridError, match=r"empty\.TextGrid: tier 'phones' has no labelled"):
        read_phones(path)

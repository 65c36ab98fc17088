"""Protocol parsing: header-driven columns, reference positions, clear errors."""
import numpy as np
import pytest

from sourcetrace.errors import StageError
from sourcetrace.protocols import check_unique_trials, protocol_files, read_enrollment, read_trials

HEADER = "AbstractModel FileName AcousticModel VocoderModel ATK IsTargetATK IsTargetAcousticModel IsTargetVocoderModel"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_enrollment_columns_by_name_any_order(tmp_path):
    p = write(tmp_path, "AA07-x-2.txt", "atk spk filename\nAA07 s1 a.wav\n\nAA07 s2 b.wav\n")
    protocol = read_enrollment(p)
    assert (protocol.fingerprint, protocol.attack) == ("AA07-x-2", "AA07")
    assert protocol.files == ["a.wav", "b.wav"] and protocol.attacks == ["AA07", "AA07"]
    assert protocol.lines == [2, 4]


def test_enrollment_reference_positions_when_header_is_unnamed(tmp_path):
    p = write(tmp_path, "AA01-co-1.txt", "c0 c1 c2 c3\nspk utt.wav x AA01\n")
    protocol = read_enrollment(p)
    assert protocol.files == ["utt.wav"] and protocol.attacks == ["AA01"]


def test_trial_reference_positions_and_numeric_booleans(tmp_path):
    p = write(tmp_path, "AA01-co-1_trials.txt", "a b c d e IsTargetATK\nAA01-co-1 u.wav x y AA02 0\n")
    protocol = read_trials(p)
    assert protocol.files.to_pylist() == ["u.wav"] and protocol.attacks.to_pylist() == ["AA02"]
    assert protocol.fingerprints.to_pylist() == ["AA01-co-1"]
    assert protocol.utterance_keys.to_pylist() == ["AA02\tu.wav"]


def test_trial_irregular_whitespace_is_parsed(tmp_path):
    p = write(tmp_path, "AA01-co-1_trials.txt", HEADER + "\nAA01-co-1   u.wav  am vm\tAA01 True True 1\n")
    protocol = read_trials(p)
    assert protocol.table.column("VocoderModel").to_pylist() == ["vm"]
    assert protocol.table.column("IsTargetVocoderModel").to_pylist() == ["1"]


@pytest.mark.parametrize("text,message", [
    ("\nAA01-co-1 u.wav am vm AA01 True True\n", "AA01-co-1_trials.txt:2: expected 8 columns"),
    ("\nAA01-co-1 u.wav am vm AA01 True yes True\n", "AA01-co-1_trials.txt:2: column IsTargetAcousticModel has 'yes'"),
])
def test_malformed_trial_lines_name_file_and_line(tmp_path, text, message):
    p = write(tmp_path, "AA01-co-1_trials.txt", HEADER + text)
    with pytest.raises(StageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_trials(p)


def test_duplicate_trials_found_from_ids(tmp_path):
    p = write(tmp_path, "AA01-co-1_trials.txt", HEADER + "\nAA01-co-1 u.wav am vm AA01 True 1 0\n"
              "AA01-co-1 v.wav am vm AA01 True 1 0\n\nAA01-co-1 u.wav am vm AA01 True 1 0\n")
    protocol = read_trials(p)
    check_unique_trials(protocol, np.array([0, 0, 0]), np.array([4, 2, 3]))
    with pytest.raises(StageError, match=r"AA01-co-1_trials.txt:5: duplicate trial \(AA01-co-1, u.wav\) "
                                         r"\(first at line 2\)"):
        check_unique_trials(protocol, np.array([0, 0, 0]), np.array([4, 2, 4]))


def test_enrollment_errors(tmp_path):
    with pytest.raises(StageError, match=r"AA01-co-2.txt:3: expected 4 columns"):
        read_enrollment(write(tmp_path, "AA01-co-2.txt", "a FileName c ATK\ns u.wav t AA01\ns v.wav\n"))
    with pytest.raises(StageError, match=r"AA01-co-3.txt:3: duplicate enrollment utterance 'u.wav'"):
        read_enrollment(write(tmp_path, "AA01-co-3.txt", "a FileName c ATK\ns u.wav t AA01\ns u.wav t AA01\n"))
    with pytest.raises(StageError, match=r"must look like <ATK>-<condition>"):
        read_enrollment(write(tmp_path, "enroll.txt", "a FileName c ATK\ns u.wav t AA01\n"))


def test_protocol_folder_listing(tmp_path):
    write(tmp_path, "AA03-nc-all.txt", "")
    write(tmp_path, "AA01-co-1.txt", "")
    write(tmp_path, "AA01-co-1_trials.txt", "")
    assert [p.name for p in protocol_files(tmp_path)] == ["AA01-co-1.txt", "AA03-nc-all.txt"]
    assert [p.name for p in protocol_files(tmp_path, trials=True)] == ["AA01-co-1_trials.txt"]
    with pytest.raises(StageError, match="protocol folder not found"):
        protocol_files(tmp_path / "absent")


def test_line_numbers_skip_blank_lines(tmp_path):
    from sourcetrace.protocols import data_lines, line_of
    p = write(tmp_path, "x.txt", "\nh a b\n\nx y z\n  \t\nq r s\nlast w w")
    assert data_lines(p).tolist() == [4, 6, 7] and line_of(p, 1) == 6
    bad = write(tmp_path, "AA01-co-1_trials.txt", HEADER + "\n\nAA01-co-1 u.wav am vm AA01 True True 1\n\n"
                "AA01-co-1 v.wav am vm AA01 True x 1\n")
    with pytest.raises(StageError, match=r"AA01-co-1_trials.txt:5: column IsTargetAcousticModel has 'x'"):
        read_trials(bad)

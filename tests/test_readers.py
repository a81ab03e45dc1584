"""FASTA/TSV readers: good files parse; every kind of bad file names the file, the line or record, and the value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.data.readers import SequenceFileError, read_fasta, read_source, read_tsv
from harness.paths import DataNotFoundError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_fasta_multiline_lowercase_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.fa", ">r1 some description\nacgt\nNNAC\n\n>r2\nGGGG\n")
    assert read_fasta(path) == [("r1", "ACGTNNAC"), ("r2", "GGGG")]


def test_fasta_invalid_character_names_file_record_line_and_char(tmp_path: Path) -> None:
    path = write(tmp_path, "bad_char.fa", ">r1\nACGT\n>rec_7\nACGT\nACXT\n")
    with pytest.raises(SequenceFileError) as err:
        read_fasta(path)
    message = str(err.value)
    assert "bad_char.fa:5" in message and "'rec_7'" in message and "'X'" in message and "column 3" in message


def test_fasta_header_without_sequence(tmp_path: Path) -> None:
    middle = write(tmp_path, "middle.fa", ">r1\n>r2\nACGT\n")
    with pytest.raises(SequenceFileError, match=r"middle\.fa:1: record 'r1' has a header but no sequence"):
        read_fasta(middle)
    truncated = write(tmp_path, "truncated.fa", ">r1\nACGT\n>r2\n")
    with pytest.raises(SequenceFileError, match=r"truncated\.fa:3: record 'r2' has a header but no sequence"):
        read_fasta(truncated)


def test_fasta_sequence_before_header(tmp_path: Path) -> None:
    path = write(tmp_path, "headless.fa", "\nACGT\n>r1\nACGT\n")
    with pytest.raises(SequenceFileError, match=r"headless\.fa:2: sequence line before any '>' header.*'ACGT'"):
        read_fasta(path)


def test_fasta_empty_and_blank_files(tmp_path: Path) -> None:
    with pytest.raises(SequenceFileError, match=r"empty\.fa: file is empty"):
        read_fasta(write(tmp_path, "empty.fa", ""))
    with pytest.raises(SequenceFileError, match=r"blank\.fa: no FASTA records"):
        read_fasta(write(tmp_path, "blank.fa", "\n\n"))
    with pytest.raises(SequenceFileError, match=r"noid\.fa:1: FASTA header '>' has no record id"):
        read_fasta(write(tmp_path, "noid.fa", ">\nACGT\n"))


def test_missing_path_is_data_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"nowhere\.fa does not exist"):
        read_fasta(tmp_path / "nowhere.fa")
    with pytest.raises(DataNotFoundError, match=r"nowhere\.tsv does not exist"):
        read_tsv(tmp_path / "nowhere.tsv")


def test_tsv_with_and_without_header(tmp_path: Path) -> None:
    with_header = read_tsv(write(tmp_path, "h.tsv", "seq\tlabel\nACGT\t1\nggnn\t0\n"))
    assert with_header.seqs == ["ACGT", "GGNN"]
    np.testing.assert_array_equal(with_header.labels, [1, 0])
    assert list(with_header.ids) == ["h.tsv:2", "h.tsv:3"]
    bare = read_tsv(write(tmp_path, "b.tsv", "ACGT\t0\r\nCCCC\t1\n\n"))
    assert bare.seqs == ["ACGT", "CCCC"] and list(bare.labels) == [0, 1]


def test_tsv_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "cols.tsv", "seq\tlabel\nACGT\t1\nACGTACGT\n")
    with pytest.raises(SequenceFileError, match=r"cols\.tsv:3: expected 2 tab-separated columns.*found 1.*'ACGTACGT'"):
        read_tsv(path)


def test_tsv_bad_label(tmp_path: Path) -> None:
    path = write(tmp_path, "labels.tsv", "ACGT\t1\nACGT\tenhancer\n")
    with pytest.raises(SequenceFileError, match=r"labels\.tsv:2: bad label 'enhancer' \(expected 0 or 1\)"):
        read_tsv(path)


def test_tsv_invalid_character_and_empty_sequence(tmp_path: Path) -> None:
    with pytest.raises(SequenceFileError, match=r"chars\.tsv:3: invalid character 'U' at position 2"):
        read_tsv(write(tmp_path, "chars.tsv", "seq\tlabel\nACGT\t1\nAUGC\t0\n"))
    with pytest.raises(SequenceFileError, match=r"blankseq\.tsv:2: empty sequence"):
        read_tsv(write(tmp_path, "blankseq.tsv", "ACGT\t1\n\t0\n"))
    with pytest.raises(SequenceFileError, match=r"onlyheader\.tsv: no data rows"):
        read_tsv(write(tmp_path, "onlyheader.tsv", "seq\tlabel\n"))


def test_source_with_one_class_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "one.tsv", "ACGT\t1\nCCCC\t1\n")
    with pytest.raises(SequenceFileError, match=r"one\.tsv: all 2 sequences have label 1; need both 0 and 1"):
        read_source(str(path))


def test_source_fasta_pairs(tmp_path: Path) -> None:
    pos = write(tmp_path, "pos.fa", ">p1\nACGT\n>p2\nAAAA\n")
    neg = write(tmp_path, "neg.fa", ">n1\nCCCC\n")
    data = read_source(f"1:{pos}, 0:{neg}")
    assert data.seqs == ["ACGT", "AAAA", "CCCC"]
    assert list(data.labels) == [1, 1, 0] and list(data.ids) == ["p1", "p2", "n1"]
    with pytest.raises(SequenceFileError, match=r"item '2:.*pos\.fa'.*expected LABEL:PATH with LABEL 0 or 1"):
        read_source(f"2:{pos},0:{neg}")

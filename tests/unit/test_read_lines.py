"""read_lines: a stream's lines read in big chunks, exactly as iterating the binary stream gives them."""

from __future__ import annotations

import io

import pytest

from airflow_provider_consentio.operators.base import storage
from airflow_provider_consentio.operators.base.storage import read_lines


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"one\ntwo\n",
        b"one\ntwo",  # no final newline
        b"a\r\nb\r\n\n\nc",  # CRLF kept, blank lines kept
        "ünï\ncödé\n".encode(),
        b"x" * 50 + b"\n" + b"y" * 7 + b"\n" + b"z" * 33,  # lines longer than a chunk, and across chunks
    ],
)
def test_the_lines_are_those_of_iterating_the_stream(monkeypatch, data):
    monkeypatch.setattr(storage, "LINE_READ_SIZE", 8)
    assert list(read_lines(io.BytesIO(data))) == list(io.BytesIO(data))


def test_a_big_file_is_read_in_a_few_reads():
    reads = []

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(size)
            return super().read(size)

    lines = [b'{"hash_id": "%06d"}\n' % number for number in range(200_000)]
    assert list(read_lines(Counting(b"".join(lines)))) == lines
    assert len(reads) <= 6  # 4.4 MB a megabyte at a time, and the empty read at the end

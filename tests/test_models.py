"""Loading models offline: a damaged GGUF file is named, with what is wrong with it, before the expensive load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import InputError

pytest.importorskip("gguf")


def _gguf() -> Path:
    from attrib.models import resolve

    src = resolve("smollm2-135m")
    assert src.gguf_file is not None
    return src.folder / src.gguf_file


def _head(tmp_path: Path, n: int) -> Path:
    """The first ``n`` bytes of the shipped GGUF: a download or copy cut short."""
    cut = tmp_path / "trunc.gguf"
    with _gguf().open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(n))
    return cut


def test_the_shipped_gguf_holds_exactly_what_its_tensors_need() -> None:
    from attrib.models import check_gguf, gguf_data_size

    size = _gguf().stat().st_size
    assert gguf_data_size(_gguf()) == (size, size)
    check_gguf(_gguf())


def test_a_truncated_gguf_is_reported_as_truncated(tmp_path: Path) -> None:
    """`head -c 20000000` of the GGUF failed in the dequantization with "cannot reshape array of size 18214336
    into shape (49152,612)", which did not say the file was cut short."""
    from attrib.models import load_model

    cut = _head(tmp_path, 20_000_000)
    size = _gguf().stat().st_size
    with pytest.raises(InputError) as e:
        load_model(cut, memo=False, use_cache=False)
    assert str(e.value) == (f"{cut}: cannot load this GGUF file: truncated or damaged: the file holds 20000000 "
                            f"bytes, its tensors need {size}")
    r = CliRunner().invoke(app, ["compliance", "--model", str(cut), "--no-perplexity"])
    assert r.exit_code == 3 and r.output.strip() == f"error: {e.value}", r.output


def test_a_gguf_cut_inside_its_header_is_reported(tmp_path: Path) -> None:
    from attrib.models import load_model

    cut = _head(tmp_path, 100_000)  # SmolLM2's header (vocabulary, merges, tensor table) is 1.8 MB
    with pytest.raises(InputError, match="truncated or damaged: the file holds 100000 bytes and ends inside its "
                                         "header") as e:
        load_model(cut, memo=False, use_cache=False)
    assert e.value.path == str(cut)


def test_a_longer_gguf_and_one_that_is_not_gguf_are_left_to_the_loader(tmp_path: Path) -> None:
    from attrib.models import check_gguf, gguf_data_size

    padded = tmp_path / "padded.gguf"
    shutil.copy(_gguf(), padded)
    with padded.open("ab") as f:
        f.write(b"\0" * 64)  # trailing bytes: nothing missing
    size = _gguf().stat().st_size
    assert gguf_data_size(padded) == (size + 64, size)
    check_gguf(padded)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"not a gguf file at all, just text")
    assert gguf_data_size(other) is None  # the loader's own error names it ("cannot load this GGUF file: ...")

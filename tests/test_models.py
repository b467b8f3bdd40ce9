"""Loading models offline: a GGUF file cut short is named as truncated, with its size and the loader's error."""

from __future__ import annotations

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


def test_a_truncated_gguf_is_reported_as_truncated(tmp_path: Path) -> None:
    """`head -c 20000000` of the GGUF failed in the dequantization with "cannot reshape array of size 18214336
    into shape (49152,612)", which did not say the file was cut short."""
    from attrib.models import load_model

    cut = _head(tmp_path, 20_000_000)
    with pytest.raises(InputError) as e:
        load_model(cut, memo=False, use_cache=False)
    assert str(e.value) == (f"{cut}: cannot load this GGUF file: truncated or damaged: the file holds 20000000 "
                            "bytes (ValueError: cannot reshape array of size 18214336 into shape (49152,612))")
    r = CliRunner().invoke(app, ["compliance", "--model", str(cut), "--no-perplexity"])
    assert r.exit_code == 3 and r.output.strip() == f"error: {e.value}", r.output


@pytest.mark.parametrize("n", [1000, 1_700_000])
def test_a_gguf_cut_inside_its_header_is_reported(tmp_path: Path, n: int) -> None:
    """`head -c 1000`: the reader runs out of bytes in the metadata (SmolLM2's header is 1.8 MB), ``struct.error``."""
    from attrib.models import load_model

    cut = _head(tmp_path, n)
    with pytest.raises(InputError, match=f"cannot load this GGUF file: truncated or damaged: the file holds {n} bytes "
                                         r"\(error: unpack_from requires a buffer") as e:
        load_model(cut, memo=False, use_cache=False)
    assert e.value.path == str(cut)


def test_a_gguf_that_is_not_gguf_keeps_the_loaders_error(tmp_path: Path) -> None:
    from attrib.models import load_model

    other = tmp_path / "other.gguf"
    other.write_bytes(b"not a gguf file at all, just text")
    with pytest.raises(InputError, match="cannot load this GGUF file: ") as e:
        load_model(other, memo=False, use_cache=False)
    assert "truncated" not in str(e.value)


@pytest.mark.parametrize("bad", ["cuda", "float8", "int8", 32, None])
def test_a_bad_dtype_is_named_before_the_model_is_looked_up(bad: object) -> None:
    """dtype='cuda' returned the torch.cuda module from getattr(torch, ...), was logged as a damaged cache and then
    blamed on the GGUF file ("cannot pickle 'module' object"); 'float8' was a bare AttributeError."""
    from attrib.errors import UsageError
    from attrib.models import load_model

    with pytest.raises(UsageError, match=r"^dtype: must be one of float32, float16, bfloat16 \(a name or a torch "
                                         r"dtype\), got ") as e:
        load_model("no-such-model", dtype=bad)  # checked first: no NotFoundError for the name
    assert repr(bad) in str(e.value)


@pytest.mark.slow
def test_a_torch_dtype_is_the_same_as_its_name() -> None:
    torch = pytest.importorskip("torch")
    from attrib.models import load_model

    assert load_model("smollm2-135m", dtype=torch.float32)[0] is load_model("smollm2-135m", dtype="float32")[0]
    assert load_model("smollm2-135m", dtype="torch.float32")[0] is load_model("smollm2-135m")[0]


def test_load_bridge_refuses_cuda_where_torch_has_none() -> None:
    """load_bridge(device='cuda') on a CPU-only torch returned a bridge with its weights on the CPU and cfg.device
    'cuda'; generation then failed with a bare "Torch not compiled with CUDA enabled"."""
    torch = pytest.importorskip("torch")
    from attrib.errors import UsageError
    from attrib.models import load_bridge

    if torch.version.cuda is not None and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here")
    why = "CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
    for device in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(UsageError, match=rf"^device: 'cuda(:0)?' is not available: .*{why}.*; use device='cpu'"):
            load_bridge("smollm2-135m", device=device)

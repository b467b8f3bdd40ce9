"""segment_attention_stats against naive softmax attention: the PyTorch path, the CUDA kernel's block program
run on the CPU (host emulator built with nvcc), the CUDA kernel itself on a GPU, and the build fallback."""

from __future__ import annotations

import ctypes
import logging
import math
import shutil
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from attrib import kernels  # noqa: E402
from attrib.errors import InputError  # noqa: E402
from attrib.kernels import (  # noqa: E402
    KernelUnavailable,
    naive_segment_attention_stats,
    segment_attention_stats,
)

REPO = Path(__file__).resolve().parent.parent
CUDA_EXT = REPO / "cuda_ext"
NVCC = shutil.which("nvcc")
HAS_GPU = torch.cuda.is_available()

# (B, Hq, Hkv, T, D, G, causal, query_positions, block_size)
CASES = [
    (1, 1, 1, 1, 32, 1, True, None, 512),  # T = 1
    (1, 4, 1, 1, 64, 3, False, None, 512),  # T = 1, segments absent from the keys
    (2, 9, 3, 37, 64, 5, True, None, 8),  # SmolLM2 heads (GQA 3:1), odd length, many chunks
    (2, 9, 3, 37, 64, 5, False, None, 16),
    (1, 4, 4, 129, 16, 40, True, None, 32),  # many segments, MHA
    (2, 4, 2, 129, 32, 40, False, [5, 0, 128, 7, 7], 16),  # unsorted, repeated query positions
    (1, 6, 1, 300, 64, 3, True, [299, 3, 150], 64),  # MQA, few queries over a longer context
    (3, 2, 1, 63, 8, 7, True, [62], 10),  # uneven blocks, one query
]


def _case(B, Hq, Hkv, T, D, G, seed=0, per_batch=True, dtype=torch.float32, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(B, Hq, T, D, generator=g) * spread).to(dtype)
    k = (torch.randn(B, Hkv, T, D, generator=g) * spread).to(dtype)
    shape = (B, T) if per_batch else (T,)
    seg = torch.randint(0, G, shape, generator=g)
    return q, k, seg


def _assert_close(got, ref, atol):
    torch.testing.assert_close(got.mass.cpu(), ref.mass.cpu(), atol=atol, rtol=0)
    torch.testing.assert_close(got.entropy.cpu(), ref.entropy.cpu(), atol=atol, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_torch_path_matches_naive_fp32(case):
    B, Hq, Hkv, T, D, G, causal, qpos, bs = case
    q, k, seg = _case(B, Hq, Hkv, T, D, G, seed=T + G)
    kw = dict(causal=causal, query_positions=qpos, n_segments=G)
    got = segment_attention_stats(q, k, seg, backend="torch", block_size=bs, **kw)
    ref = naive_segment_attention_stats(q, k, seg, **kw)
    assert got.backend == "torch"
    Q = T if qpos is None else len(qpos)
    assert got.mass.shape == (B, Hq, Q, G) and got.entropy.shape == (B, Hq, Q)
    _assert_close(got, ref, 1e-5)
    torch.testing.assert_close(got.mass.sum(-1), torch.ones(B, Hq, Q), atol=1e-5, rtol=0)


def test_known_answer_uniform_attention():
    """q = 0 gives uniform attention: mass = segment share of visible keys, entropy = ln(#visible keys)."""
    T = 10
    q = torch.zeros(1, 2, T, 4)
    k = torch.randn(1, 1, T, 4)
    seg = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    got = segment_attention_stats(q, k, seg, causal=True, block_size=3)
    for i in range(T):
        n = i + 1
        want = torch.bincount(seg[:n], minlength=3).float() / n
        torch.testing.assert_close(got.mass[0, 1, i], want, atol=1e-6, rtol=0)
        assert got.entropy[0, 0, i].item() == pytest.approx(math.log(n), abs=1e-5)


def test_large_logits_stay_finite_and_exact():
    """Logits in the hundreds: the running-max rescaling must not overflow or lose the small segments."""
    q, k, seg = _case(1, 3, 1, 200, 16, 4, seed=3, spread=6.0)
    got = segment_attention_stats(q, k, seg, causal=True, block_size=23)
    ref = naive_segment_attention_stats(q, k, seg, causal=True)
    assert torch.isfinite(got.mass).all() and torch.isfinite(got.entropy).all()
    _assert_close(got, ref, 1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_fp32_accumulation(dtype):
    q32, k32, seg = _case(2, 9, 3, 77, 64, 6, seed=11)
    q, k = q32.to(dtype), k32.to(dtype)
    got = segment_attention_stats(q, k, seg, block_size=16)
    # exact against the same low-precision values accumulated in fp32 ...
    _assert_close(got, naive_segment_attention_stats(q.float(), k.float(), seg), 1e-5)
    # ... and within the bf16 tolerance of full-precision attention.
    _assert_close(got, naive_segment_attention_stats(q32, k32, seg), 1e-2)


def test_defaults_scale_and_segment_count():
    q, k, seg = _case(1, 2, 2, 20, 16, 3, seed=5)
    a = segment_attention_stats(q, k, seg)
    b = segment_attention_stats(q * 0.25, k, seg, scale=1.0)  # 1/sqrt(16) = 0.25
    _assert_close(a, b, 1e-6)
    assert a.mass.shape[-1] == int(seg.max()) + 1
    wide = segment_attention_stats(q, k, seg, n_segments=6)
    assert wide.mass.shape[-1] == 6 and wide.mass[..., 3:].abs().max() == 0


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda q, k, s: (q[0], k, s), "q"),
        (lambda q, k, s: (q, k[:, :, :-1], s), "k"),
        (lambda q, k, s: (q, torch.cat([k, k[:, :1]], 1), s), "k"),  # 2 query heads, 3 KV heads
        (lambda q, k, s: (q, k, s[..., :-1]), "segment_ids"),
        (lambda q, k, s: (q, k, s.float()), "segment_ids"),
        (lambda q, k, s: (q, k, s - 1), "segment_ids"),
        (lambda q, k, s: (q, k.double(), s), "q/k"),
    ],
)
def test_bad_input_names_the_field(mutate, field):
    q, k, seg = _case(2, 2, 2, 12, 8, 3, seed=1)
    q2, k2, s2 = mutate(q, k, seg)
    with pytest.raises(InputError) as err:
        segment_attention_stats(q2, k2, s2)
    assert err.value.field == field


def test_bad_query_positions_and_segment_count():
    q, k, seg = _case(1, 2, 2, 12, 8, 3, seed=1)
    with pytest.raises(InputError, match="query_positions"):
        segment_attention_stats(q, k, seg, query_positions=[3, 12])
    with pytest.raises(InputError, match="n_segments"):
        segment_attention_stats(q, k, seg, n_segments=2)


@pytest.mark.parametrize("block_size", [-1, 0, 1.5, True, "8"])
def test_bad_block_size_is_one_line_naming_it(block_size):
    """-1 returned uninitialised memory (the block loop never ran), 0 a bare ValueError, 1.5 a TypeError."""
    q, k, seg = _case(1, 2, 2, 12, 8, 3, seed=1)
    with pytest.raises(InputError, match="must be an int >= 1") as err:
        segment_attention_stats(q, k, seg, block_size=block_size)
    assert err.value.field == "block_size"
    one = segment_attention_stats(q, k, seg, block_size=1)  # the smallest block is fine
    _assert_close(one, naive_segment_attention_stats(q, k, seg), 1e-5)


@pytest.mark.parametrize("block_size", [4, 512])  # full key chunks (matmul out=) / one partial chunk (in-place ops)
def test_inputs_that_require_grad_give_detached_statistics(block_size):
    """A statistic, not a layer: q/k from a model under autograd used to raise in the forward (out= matmul) or
    in backward (modified by an in-place operation)."""
    q, k, seg = _case(1, 2, 1, 12, 8, 3, seed=2)
    ref = segment_attention_stats(q, k, seg, block_size=block_size)
    q.requires_grad_(True)
    k.requires_grad_(True)
    got = segment_attention_stats(q, k, seg, block_size=block_size)
    assert not got.mass.requires_grad and not got.entropy.requires_grad
    _assert_close(got, ref, 0.0)
    assert torch.is_grad_enabled()  # the caller's grad mode is left alone


# ---------------------------------------------------------------------------------------------------------
# Extension build fallback.


def test_fallback_logs_reason_once(monkeypatch, caplog):
    monkeypatch.setenv("ATTRIB_DISABLE_CUDA_EXT", "1")
    kernels._reset_extension_state()
    q, k, seg = _case(1, 2, 1, 9, 32, 2, seed=2)
    if HAS_GPU:
        q, k, seg = q.cuda(), k.cuda(), seg.cuda()
    with caplog.at_level(logging.INFO, logger="attrib.kernels"):
        a = segment_attention_stats(q, k, seg)
        b = segment_attention_stats(q, k, seg)
    assert a.backend == b.backend == "torch"
    msgs = [r.getMessage() for r in caplog.records if r.name == "attrib.kernels"]
    assert len(msgs) == 1 and "ATTRIB_DISABLE_CUDA_EXT" in msgs[0], msgs
    with pytest.raises(KernelUnavailable, match="ATTRIB_DISABLE_CUDA_EXT"):
        segment_attention_stats(q, k, seg, backend="cuda")
    kernels._reset_extension_state()


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU fallback")
def test_no_gpu_uses_torch_path_with_logged_reason(monkeypatch, caplog):
    monkeypatch.delenv("ATTRIB_DISABLE_CUDA_EXT", raising=False)
    kernels._reset_extension_state()
    q, k, seg = _case(1, 2, 1, 9, 32, 2, seed=2)
    with caplog.at_level(logging.INFO, logger="attrib.kernels"):
        assert segment_attention_stats(q, k, seg).backend == "torch"
        assert kernels.load_extension() is None
    msgs = [r.getMessage() for r in caplog.records if r.name == "attrib.kernels"]
    assert len(msgs) == 1, msgs
    assert "CPU-only build" in msgs[0] or "no CUDA GPU" in msgs[0]
    assert kernels.extension_reason() == kernels.why_no_cuda()
    with pytest.raises(KernelUnavailable):
        segment_attention_stats(q, k, seg, backend="cuda")
    kernels._reset_extension_state()


@pytest.mark.skipif(torch.version.cuda is not None, reason="a CUDA torch would really build the extension")
def test_failed_build_falls_back_with_reason(monkeypatch, caplog):
    """Forcing the JIT build where it cannot succeed (CPU-only torch): None, a logged reason, results still come."""
    monkeypatch.delenv("ATTRIB_DISABLE_CUDA_EXT", raising=False)
    kernels._reset_extension_state()
    with caplog.at_level(logging.INFO, logger="attrib.kernels"):
        assert kernels.load_extension(force=True) is None
    reason = kernels.extension_reason()
    assert reason is not None and reason.startswith("building the CUDA extension failed")
    assert [r.levelno for r in caplog.records if r.name == "attrib.kernels"] == [logging.WARNING]
    q, k, seg = _case(1, 2, 1, 9, 32, 2, seed=2)
    assert segment_attention_stats(q, k, seg).backend == "torch"
    kernels._reset_extension_state()


# ---------------------------------------------------------------------------------------------------------
# The kernel's block program on the CPU (same code as the GPU kernel, threads serialized between barriers).


class _Args(ctypes.Structure):
    """Mirror of AttnStatsArgs in cuda_ext/attn_stats.h."""

    _fields_ = [
        ("dtype", ctypes.c_int), ("B", ctypes.c_int), ("Hq", ctypes.c_int), ("Hkv", ctypes.c_int),
        ("T", ctypes.c_int), ("D", ctypes.c_int), ("Q", ctypes.c_int), ("G", ctypes.c_int),
        ("q", ctypes.c_void_p), ("q_sb", ctypes.c_int64), ("q_sh", ctypes.c_int64), ("q_st", ctypes.c_int64),
        ("k", ctypes.c_void_p), ("k_sb", ctypes.c_int64), ("k_sh", ctypes.c_int64), ("k_st", ctypes.c_int64),
        ("seg", ctypes.c_void_p), ("seg_sb", ctypes.c_int64), ("qpos", ctypes.c_void_p),
        ("scale", ctypes.c_float), ("causal", ctypes.c_int), ("mass", ctypes.c_void_p),
        ("entropy", ctypes.c_void_p), ("num_splits", ctypes.c_int), ("block_q", ctypes.c_int),
        ("workspace", ctypes.c_void_p),
    ]


_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


@pytest.fixture(scope="module")
def host_lib():
    if NVCC is None:
        pytest.skip("nvcc not found")
    out = REPO / "build" / "cuda" / "libattn_stats_host.so"
    srcs = [CUDA_EXT / n for n in ("attn_stats_host.cu", "attn_stats_impl.cuh", "attn_stats.h")]
    if not out.exists() or out.stat().st_mtime < max(s.stat().st_mtime for s in srcs):
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [NVCC, "-O2", "-shared", "-Xcompiler", "-fPIC", str(srcs[0]), "-o", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(out))
    lib.attn_stats_host_run.argtypes = [ctypes.POINTER(_Args)]
    lib.attn_stats_host_plan.argtypes = [ctypes.POINTER(_Args)]
    lib.attn_stats_host_workspace_bytes.argtypes = [ctypes.POINTER(_Args)]
    lib.attn_stats_host_workspace_bytes.restype = ctypes.c_size_t
    return lib


def _host_stats(lib, q, k, seg, *, causal, qpos=None, G=None, scale=None, splits=0, block_q=0):
    B, Hq, T, D = q.shape
    G = int(seg.max()) + 1 if G is None else G
    seg32 = (seg if seg.dim() == 2 else seg[None]).to(torch.int32).contiguous()
    pos = None if qpos is None else torch.as_tensor(qpos, dtype=torch.int64)
    Q = T if pos is None else pos.numel()
    mass = torch.full((B, Hq, Q, G), float("nan"))
    ent = torch.full((B, Hq, Q), float("nan"))
    a = _Args(
        dtype=_DTYPES[q.dtype], B=B, Hq=Hq, Hkv=k.shape[1], T=T, D=D, Q=Q, G=G,
        q=q.data_ptr(), q_sb=q.stride(0), q_sh=q.stride(1), q_st=q.stride(2),
        k=k.data_ptr(), k_sb=k.stride(0), k_sh=k.stride(1), k_st=k.stride(2),
        seg=seg32.data_ptr(), seg_sb=0 if seg32.shape[0] == 1 else T,
        qpos=None if pos is None else pos.data_ptr(),
        scale=1 / math.sqrt(D) if scale is None else scale, causal=int(causal),
        mass=mass.data_ptr(), entropy=ent.data_ptr(), num_splits=splits, block_q=block_q, workspace=None,
    )
    assert lib.attn_stats_host_plan(ctypes.byref(a)) == 0
    ws = torch.zeros(max(1, lib.attn_stats_host_workspace_bytes(ctypes.byref(a)) // 4))
    a.workspace = ws.data_ptr()
    status = lib.attn_stats_host_run(ctypes.byref(a))
    assert status == 0, f"status {status}"
    return kernels.SegmentStats(mass=mass, entropy=ent, backend="host-emulator"), a


@pytest.mark.parametrize(
    "case, splits, block_q",
    [
        ((1, 1, 1, 1, 32, 1, True, None), 0, 0),
        ((2, 9, 3, 37, 64, 5, True, None), 1, 32),
        ((2, 9, 3, 37, 64, 5, False, None), 3, 32),  # splits of one 32-key tile each, the last one empty
        ((1, 4, 4, 129, 32, 40, True, None), 0, 64),  # many segments, auto splits
        ((2, 4, 2, 129, 96, 7, False, [5, 0, 128, 7, 7]), 5, 0),
        ((1, 6, 1, 700, 64, 3, True, [699, 3, 350]), 0, 0),  # few queries: planner splits the keys
        ((1, 2, 1, 300, 80, 4, True, None), 2, 128),
    ],
)
def test_kernel_block_program_on_cpu(host_lib, case, splits, block_q):
    B, Hq, Hkv, T, D, G, causal, qpos = case
    q, k, seg = _case(B, Hq, Hkv, T, D, G, seed=T * 7 + D)
    got, plan = _host_stats(host_lib, q, k, seg, causal=causal, qpos=qpos, G=G, splits=splits, block_q=block_q)
    ref = naive_segment_attention_stats(q, k, seg, causal=causal, query_positions=qpos, n_segments=G)
    _assert_close(got, ref, 1e-5)
    if splits == 0 and qpos is not None and len(qpos) <= 3 and T >= 512:
        assert plan.num_splits > 1  # the decode-like case really exercised the split merge


def test_kernel_block_program_half_and_strided_inputs(host_lib):
    q32, k32, seg = _case(2, 9, 3, 70, 64, 6, seed=9)
    for dtype in (torch.bfloat16, torch.float16):
        q, k = q32.to(dtype), k32.to(dtype)
        got, _ = _host_stats(host_lib, q, k, seg, causal=True, splits=2)
        _assert_close(got, naive_segment_attention_stats(q.float(), k.float(), seg), 1e-5)
        _assert_close(got, naive_segment_attention_stats(q32, k32, seg), 1e-2)
    # [B, T, H, D] storage viewed as [B, H, T, D] (what a model's projection hands over): non-contiguous strides
    qs = q32.transpose(1, 2).contiguous().transpose(1, 2)
    ks = k32.transpose(1, 2).contiguous().transpose(1, 2)
    got, _ = _host_stats(host_lib, qs, ks, seg[0], causal=False)
    _assert_close(got, naive_segment_attention_stats(q32, k32, seg[0], causal=False), 1e-5)


def test_kernel_block_program_large_logits(host_lib):
    q, k, seg = _case(1, 3, 1, 200, 32, 4, seed=3, spread=4.0)
    got, _ = _host_stats(host_lib, q, k, seg, causal=True, splits=3)
    ref = naive_segment_attention_stats(q, k, seg, causal=True)
    assert torch.isfinite(got.mass).all()
    _assert_close(got, ref, 1e-5)


def test_kernel_rejects_unsupported_head_dim(host_lib):
    q, k, seg = _case(1, 1, 1, 8, 12, 2)
    with pytest.raises(AssertionError, match="status 2"):
        _host_stats(host_lib, q, k, seg, causal=True)


@pytest.mark.slow
@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
def test_cuda_source_compiles_without_torch(tmp_path):
    """Same check as `make kernels`: the .cu compiles for sm_90 with no torch headers on the include path."""
    src = CUDA_EXT / "attn_stats.cu"
    includes = [ln for f in ("attn_stats.cu", "attn_stats_impl.cuh", "attn_stats.h")
                for ln in (CUDA_EXT / f).read_text().splitlines() if ln.startswith("#include")]
    assert includes and not any("torch" in ln or "ATen" in ln or "c10" in ln for ln in includes), includes
    res = subprocess.run([NVCC, "-c", "-arch=sm_90", str(src), "-o", str(tmp_path / "a.o")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------------
# The CUDA kernel itself (runs only where a GPU is visible).

gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cuda_kernel_matches_reference(case, dtype):
    B, Hq, Hkv, T, D, G, causal, qpos, _ = case
    if D not in kernels.CUDA_HEAD_DIMS:
        pytest.skip(f"no CUDA instantiation for head dim {D}")
    q32, k32, seg = _case(B, Hq, Hkv, T, D, G, seed=T + G)
    q, k = q32.to(dtype).cuda(), k32.to(dtype).cuda()
    kw = dict(causal=causal, query_positions=qpos, n_segments=G)
    got = segment_attention_stats(q, k, seg.cuda(), backend="cuda", **kw)
    assert got.backend == "cuda"
    _assert_close(got, naive_segment_attention_stats(q.float().cpu(), k.float().cpu(), seg, **kw), 1e-5)
    if dtype != torch.float32:
        _assert_close(got, naive_segment_attention_stats(q32, k32, seg, **kw), 1e-2)


@pytest.mark.gpu
@gpu
def test_cuda_kernel_long_context_few_queries():
    """Answer positions over 32k keys (the split path), against the chunked PyTorch path on the GPU."""
    q, k, seg = _case(1, 9, 3, 32768, 64, 6, seed=4)
    q, k, seg = q.cuda(), k.cuda(), seg.cuda()
    pos = [32767, 20000, 5]
    got = segment_attention_stats(q, k, seg, query_positions=pos, backend="cuda")
    ref = segment_attention_stats(q, k, seg, query_positions=pos, backend="torch")
    _assert_close(got, ref, 1e-5)


@pytest.mark.parametrize(("kw", "field"), [({"scale": float("nan")}, "scale"), ({"scale": "a"}, "scale"),
                                           ({"scale": float("inf")}, "scale"), ({"n_segments": 1.5}, "n_segments"),
                                           ({"n_segments": 0}, "n_segments"), ({"n_segments": True}, "n_segments")])
def test_scale_and_segment_count_must_be_numbers(kw, field):
    """scale=nan gave NaN masses silently and scale='a' a bare ValueError; n_segments=1.5 was cut to 1."""
    q, k, seg = _case(1, 2, 2, 12, 8, 1, seed=1)
    with pytest.raises(InputError) as err:
        segment_attention_stats(q, k, seg, **kw)
    assert err.value.field == field, err.value
    assert torch.isfinite(segment_attention_stats(q, k, seg, scale=0.3, n_segments=2).mass).all()

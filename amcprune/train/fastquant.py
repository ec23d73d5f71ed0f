"""A training-only fast path for Brevitas' activation quantizers (issue 16).

Brevitas stays the model and export definition. During a training step, :func:`fast_quant` swaps, on the
model's own module instances and only until the ``with`` block ends, two pieces of work for equivalent faster
ones:

1. **The element-wise fake quantization** of every activation quantizer that is a per-tensor integer quantizer
   with zero zero-point (``FusedActivationQuantProxy`` around a ``RescalingIntQuant``/``IntQuant`` with
   ``RoundSte``, ``TensorClamp``, ``ZeroZeroPoint``, no delay: QuantReLU, QuantIdentity, QuantHardTanh as built
   here). Brevitas computes ``relu -> x / s -> + 0 -> round -> where(>max) -> where(<min) -> - 0 -> * s`` with
   about twenty full-length passes over the activation in the forward and backward passes. The fast path runs
   one fused pass each way (:class:`FakeQuant`): the same forward values, bit for bit (the same float ops in
   the same order: ``y / s``, round half to even, clamp, ``q * s``), and the gradients autograd derives from
   Brevitas' graph: ``dL/dx = mask * ((g * s) / s)`` with ``mask`` the ReLU and clamp masks (straight-through
   round), ``dL/ds = sum(g * q) - sum(mask * (g * s) * (y / s / s))``. Only the summation order of ``dL/ds``
   differs (double accumulation here), so it matches to float rounding.

   The scale, zero point and bit width are still computed by Brevitas' own modules (``scaling_impl``,
   ``int_scaling_impl``, ``zero_point_impl``, ``msb_clamp_bit_width_impl``), so the learned parameter is
   Brevitas' ``value`` and the statistics phase updates Brevitas' ``counter`` and ``buffer`` as usual.

2. **The percentile of the statistics phase** (``AbsPercentile`` over the whole tensor, the first
   ``collect_stats_steps`` = 300 training steps). Brevitas runs ``kthvalue`` over ``|relu(x)|`` (millions of
   values) for a rank a few dozen from the top. :func:`_fast_abs_percentile` finds the same value exactly
   (:class:`_TopRank`): the r-th largest of the per-chunk maxima is a lower bound of the r-th largest value, so
   only the few values at or above it are selected (``kthvalue`` on those), and for a ReLU it works on the
   ReLU's input (the r-th largest of ``relu(x)`` is ``relu`` of the r-th largest of ``x``). Its gradient lands
   on the selected element as Brevitas' does (on another element of exactly equal value only in a tie).

Two backends compute (1): ``"c"``, a small C kernel compiled on first use with the system C compiler
(``cc``; cached under ``~/.cache/amcprune``; one thread unless ``AMCPRUNE_FASTQUANT_THREADS`` says more), and
``"torch"``, the same maths in PyTorch ops (fewer passes than Brevitas but several), used when no compiler is
available. Select with ``AMCPRUNE_FASTQUANT_BACKEND=c|torch``; anything the fast path does not cover (eval
mode, CUDA, other dtypes, other quantizers) goes through Brevitas unchanged. Evaluation and export never see
the fast path: it is only active inside ``with fast_quant(model):`` and only for modules in training mode.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import math
import os
import platform
import subprocess
import tempfile
import threading
import types
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

__all__ = ["FakeQuant", "backend", "fast_quant", "fast_quant_modules"]

# --------------------------------------------------------------------------------------------------------
# The C kernel
# --------------------------------------------------------------------------------------------------------

_C_SOURCE = r"""
#include <math.h>
#include <pthread.h>
#include <stdint.h>

typedef struct {
    const float *x, *g;
    float *out;
    int64_t lo, hi;
    float s, qmin, qmax;
    int relu;
    double acc;
} job_t;

/* Brevitas: y = relu(x) (or x); u = y / s; q = round_half_even(u); q = q > qmax ? qmax : q;
   q = q < qmin ? qmin : q; out = q * s.  NaN stays NaN as in Brevitas' where-based clamp. */
static void *fwd_worker(void *p) {
    job_t *j = (job_t *)p;
    const float *restrict x = j->x;
    float *restrict out = j->out;
    const float s = j->s, qmin = j->qmin, qmax = j->qmax;
    if (j->relu) {
        for (int64_t i = j->lo; i < j->hi; ++i) {
            float xi = x[i];
            float y = xi < 0.0f ? 0.0f : xi;
            float q = rintf(y / s);
            q = q > qmax ? qmax : q;
            q = q < qmin ? qmin : q;
            out[i] = q * s;
        }
    } else {
        for (int64_t i = j->lo; i < j->hi; ++i) {
            float q = rintf(x[i] / s);
            q = q > qmax ? qmax : q;
            q = q < qmin ? qmin : q;
            out[i] = q * s;
        }
    }
    return 0;
}

/* Gradients autograd derives from Brevitas' graph: the round is straight-through, each where() passes the
   gradient where it kept its input, ReLU where x > 0. gx = mask ? (g * s) / s : 0 (Mul then Div backward);
   dL/ds = sum(g * q) - sum(mask ? (g * s) * ((y / s) / s) : 0) (Mul and Div backward w.r.t. the scale). */
static inline __attribute__((always_inline)) double bwd_range(const float *restrict x, const float *restrict g,
      float *restrict gx, int64_t lo, int64_t hi, float s, float qmin, float qmax, const int relu) {
    /* 16 lanes of float partial sums over blocks of 256 values, added into double lanes: vectorises. */
    double accd[16] = {0};
    int64_t i = lo;
    for (; i + 256 <= hi; i += 256) {
        float acc[16] = {0};
        for (int b = 0; b < 256; b += 16) {
            for (int l = 0; l < 16; ++l) {
                float xi = x[i + b + l];
                float y = (relu && xi < 0.0f) ? 0.0f : xi;
                float u = y / s;
                float q = rintf(u);
                int keep = (q <= qmax) & (q >= qmin);
                if (relu) keep = keep & (xi > 0.0f);
                q = q > qmax ? qmax : q;
                q = q < qmin ? qmin : q;
                float gi = g[i + b + l];
                float gs = gi * s;
                gx[i + b + l] = keep ? gs / s : 0.0f;
                float d = keep ? gs * (u / s) : 0.0f;
                acc[l] += gi * q - d;
            }
        }
        for (int l = 0; l < 16; ++l) accd[l] += acc[l];
    }
    double total = 0.0;
    for (int l = 0; l < 16; ++l) total += accd[l];
    for (; i < hi; ++i) {
        float xi = x[i];
        float y = (relu && xi < 0.0f) ? 0.0f : xi;
        float u = y / s;
        float q = rintf(u);
        int keep = (q <= qmax) & (q >= qmin);
        if (relu) keep = keep & (xi > 0.0f);
        q = q > qmax ? qmax : q;
        q = q < qmin ? qmin : q;
        float gi = g[i];
        float gs = gi * s;
        gx[i] = keep ? gs / s : 0.0f;
        float d = keep ? gs * (u / s) : 0.0f;
        total += (double)(gi * q) - (double)d;
    }
    return total;
}

static void *bwd_worker(void *p) {
    job_t *j = (job_t *)p;
    if (j->relu) j->acc = bwd_range(j->x, j->g, j->out, j->lo, j->hi, j->s, j->qmin, j->qmax, 1);
    else j->acc = bwd_range(j->x, j->g, j->out, j->lo, j->hi, j->s, j->qmin, j->qmax, 0);
    return 0;
}

static double run(void *(*fn)(void *), const float *x, const float *g, float *out, int64_t n, float s,
                  float qmin, float qmax, int relu, int nthreads) {
    enum { MAXT = 64 };
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAXT) nthreads = MAXT;
    if (n < 65536) nthreads = 1;
    job_t jobs[MAXT];
    pthread_t tid[MAXT];
    int64_t chunk = ((n + nthreads - 1) / nthreads + 15) / 16 * 16;
    int started[MAXT];
    for (int t = 0; t < nthreads; ++t) {
        int64_t lo = t * chunk, hi = lo + chunk;
        if (lo > n) lo = n;
        if (hi > n) hi = n;
        job_t jb = {x, g, out, lo, hi, s, qmin, qmax, relu, 0.0};
        jobs[t] = jb;
        started[t] = 0;
    }
    for (int t = 1; t < nthreads; ++t)
        started[t] = pthread_create(&tid[t], 0, fn, &jobs[t]) == 0;
    fn(&jobs[0]);
    double acc = jobs[0].acc;
    for (int t = 1; t < nthreads; ++t) {
        if (started[t]) pthread_join(tid[t], 0);
        else fn(&jobs[t]);
        acc += jobs[t].acc;
    }
    return acc;
}

void fq_forward(const float *x, float *out, int64_t n, float s, float qmin, float qmax, int relu, int nthreads) {
    run(fwd_worker, x, 0, out, n, s, qmin, qmax, relu, nthreads);
}

double fq_backward(const float *x, const float *g, float *gx, int64_t n, float s, float qmin, float qmax,
                   int relu, int nthreads) {
    return run(bwd_worker, x, g, gx, n, s, qmin, qmax, relu, nthreads);
}
"""

# No -ffast-math (it would change division and rounding); no FMA contraction, so each product is rounded as
# PyTorch rounds it.
_C_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC", "-pthread"]

# Threads of the C kernel (AMCPRUNE_FASTQUANT_THREADS, default 1). After each parallel op torch's OpenMP workers
# spin for a while; extra kernel threads then compete with them for the cores. On the 2-core development machine
# (under load) one kernel thread gave 1.12x-1.26x the float step at 16-64 filters, two gave 1.18x-1.84x.
KERNEL_THREADS: int = max(1, int(os.environ.get("AMCPRUNE_FASTQUANT_THREADS", "1") or 1))

_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_error: str | None = None


def _cpu_key() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _cache_dir() -> Path:
    root = os.environ.get("AMCPRUNE_CACHE") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "amcprune"


def _load_c() -> ctypes.CDLL | None:
    """The compiled kernel, built on first use (a fraction of a second) and cached per source and CPU."""
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    with _lib_lock:
        if _lib is not None or _lib_error is not None:
            return _lib
        cc = os.environ.get("CC", "cc")
        key = hashlib.sha256((_C_SOURCE + " ".join(_C_FLAGS) + cc + _cpu_key()).encode()).hexdigest()[:16]
        target = _cache_dir() / f"fastquant-{key}.so"
        try:
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                    src = Path(tmp) / "fastquant.c"
                    src.write_text(_C_SOURCE)
                    out = Path(tmp) / target.name
                    subprocess.run([cc, *_C_FLAGS, str(src), "-o", str(out), "-lm"], check=True,
                                   capture_output=True, timeout=120)
                    os.replace(out, target)  # atomic: concurrent builders all end with a complete file
            lib = ctypes.CDLL(str(target))
            lib.fq_forward.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float,
                                       ctypes.c_float, ctypes.c_float, ctypes.c_int, ctypes.c_int]
            lib.fq_forward.restype = None
            lib.fq_backward.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_int, ctypes.c_int]
            lib.fq_backward.restype = ctypes.c_double
            _lib = lib
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            _lib_error = f"{exc} {detail.decode(errors='replace')[:500]}".strip()
            warnings.warn(f"amcprune fast quantization: C kernel unavailable, using the PyTorch backend ({_lib_error})",
                          stacklevel=2)
        return _lib


def backend() -> str:
    """``"c"`` or ``"torch"``: what :class:`FakeQuant` runs on CPU float32 tensors in this process."""
    choice = os.environ.get("AMCPRUNE_FASTQUANT_BACKEND", "auto").lower()
    if choice == "torch":
        return "torch"
    if _load_c() is not None:
        return "c"
    if choice == "c":
        raise RuntimeError(f"AMCPRUNE_FASTQUANT_BACKEND=c but the C kernel could not be built: {_lib_error}")
    return "torch"


# --------------------------------------------------------------------------------------------------------
# The fused fake quantization
# --------------------------------------------------------------------------------------------------------


def _torch_forward(x: torch.Tensor, s: torch.Tensor, qmin: float, qmax: float, relu: bool) -> torch.Tensor:
    y = torch.relu(x) if relu else x
    q = torch.round(y / s)
    return q.clamp_(qmin, qmax).mul_(s)


def _torch_backward(x, g, s, qmin, qmax, relu):
    y = torch.relu(x) if relu else x
    u = y / s
    q = torch.round(u)
    keep = q <= qmax  # not (q > qmax); also false for NaN, where Brevitas passes the gradient (a diverged step)
    q.clamp_(max=qmax)
    keep &= q >= qmin
    q.clamp_(min=qmin)
    if relu:
        keep &= x > 0
    gs = g * s
    gx = torch.where(keep, gs / s, torch.zeros((), dtype=g.dtype))
    kept = torch.where(keep, gs, 0).reshape(-1)
    gsum = torch.dot(g.reshape(-1), q.reshape(-1)) - torch.dot(kept, (u / s).reshape(-1))
    return gx, gsum


class FakeQuant(torch.autograd.Function):
    """``out = clamp(round(act(x) / scale), qmin, qmax) * scale`` with Brevitas' straight-through gradients.

    ``act`` is ReLU when ``relu`` is true, else the identity. ``scale`` is a one-element tensor (it may
    require a gradient: it is Brevitas' learned scale, or the percentile statistic during the statistics
    phase); ``qmin``/``qmax`` are Python floats. ``handoff`` (optional, a :class:`_Handoff`) receives the
    gradient w.r.t. ``x`` so that :class:`_TopRank` can add its one element to it in place.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, qmin: float, qmax: float, relu: bool,
                handoff: "_Handoff | None" = None) -> torch.Tensor:
        x = x.contiguous()
        ctx.save_for_backward(x, scale)
        ctx.params = (float(qmin), float(qmax), bool(relu))
        ctx.handoff = handoff
        s = scale.detach()
        if backend() == "c":
            out = torch.empty_like(x)
            _lib.fq_forward(x.data_ptr(), out.data_ptr(), x.numel(), float(s), float(qmin), float(qmax),
                            int(relu), KERNEL_THREADS)
            return out
        return _torch_forward(x, s.reshape(()), float(qmin), float(qmax), relu)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, scale = ctx.saved_tensors
        qmin, qmax, relu = ctx.params
        g = grad.contiguous()
        s = scale.detach()
        if backend() == "c":
            gx = torch.empty_like(x)
            gsum = _lib.fq_backward(x.data_ptr(), g.data_ptr(), gx.data_ptr(), x.numel(), float(s), qmin, qmax,
                                    int(relu), KERNEL_THREADS)
            gsum = torch.tensor(gsum, dtype=scale.dtype)
        else:
            gx, gsum = _torch_backward(x, g, s.reshape(()), qmin, qmax, relu)
        gscale = gsum.to(scale.dtype).reshape(scale.shape) if ctx.needs_input_grad[1] else None
        if ctx.handoff is not None and ctx.needs_input_grad[0]:
            ctx.handoff.gx = gx
        return (gx if ctx.needs_input_grad[0] else None), gscale, None, None, None, None


# --------------------------------------------------------------------------------------------------------
# The exact fast percentile of the statistics phase
# --------------------------------------------------------------------------------------------------------


class _Handoff:
    """Carries :class:`FakeQuant`'s gradient w.r.t. ``x`` to :class:`_TopRank`'s backward (same forward pass).

    Both take the same ``x``, and autograd runs ``FakeQuant.backward`` first (it yields the gradient of the
    scale that flows back into ``_TopRank``) and the backward of ``x``'s producer only after both. So instead
    of a full-length tensor of zeros holding one value, added to ``FakeQuant``'s gradient by the engine,
    ``_TopRank`` adds its one value into ``FakeQuant``'s gradient in place (the same sum, the same float add)."""

    __slots__ = ("gx",)

    def __init__(self) -> None:
        self.gx: torch.Tensor | None = None


class _TopRank(torch.autograd.Function):
    """The ``r``-th largest of ``f(x)`` over the whole tensor, ``f`` = ``abs`` or ``relu`` (both monotonic in
    what is selected), exactly; the gradient goes to the one element selected, times ``f'`` there (``sgn`` for
    ``abs``, ``x > 0`` for ``relu``), as autograd does through Brevitas' ``kthvalue(abs(relu(x)))``.

    Selection: the ``r``-th largest of per-chunk maxima is at most the ``r``-th largest value (``r`` distinct
    values are at least it), so only the values at or above it (a few dozen to hundreds), found in the chunks
    whose maximum reaches it, go to ``kthvalue``: one reading pass (the chunk maxima) over the tensor.
    Returns ``None`` from :meth:`find` when that does not narrow things down (then Brevitas' code runs).
    """

    @staticmethod
    def find(v: torch.Tensor, r: int, mode: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        n = v.numel()
        chunk = next((c for c in (1024, 512, 256, 128, 64, 32, 16) if n % c == 0 and n // c >= 4 * r), None)
        if chunk is None:
            return None
        rows = v.view(-1, chunk)
        if mode == "abs":
            lo, hi = torch.aminmax(rows, dim=1)
            row_max = torch.maximum(hi, -lo)
        else:
            row_max = torch.amax(rows, dim=1)
        bound = torch.topk(row_max, r, sorted=False).values.min()
        if not bool(bound > 0):  # NaN, or a bound of zero that selects most of a ReLU's input
            return None
        # only the chunks whose maximum reaches the bound hold values that do (usually about r chunks)
        sel = torch.nonzero(row_max >= bound).squeeze(1)
        if sel.numel() * chunk > n // 8:
            return None
        key = rows[sel].reshape(-1)
        if mode == "abs":
            key = key.abs()
        idx = torch.nonzero(key >= bound).squeeze(1)
        cand = key[idx]
        value, pos = torch.kthvalue(cand, cand.numel() - r + 1)
        flat = idx[pos]
        return value, sel[flat // chunk] * chunk + flat % chunk

    @staticmethod
    def forward(ctx, x: torch.Tensor, value: torch.Tensor, index: torch.Tensor, mode: str,
                handoff: _Handoff | None = None) -> torch.Tensor:
        v = x.reshape(-1)
        picked = v[index]
        ctx.save_for_backward(index, picked)
        ctx.shape, ctx.mode, ctx.handoff = x.shape, mode, handoff
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        index, picked = ctx.saved_tensors
        factor = torch.sgn(picked) if ctx.mode == "abs" else (picked > 0).to(grad.dtype)
        handoff = ctx.handoff
        if handoff is not None and handoff.gx is not None and handoff.gx.numel() == ctx.shape.numel():
            gx, handoff.gx = handoff.gx, None
            gx.view(-1)[index] += grad * factor  # x is FakeQuant's input or a view of it (Brevitas' stats view)
            return None, None, None, None, None
        gx = torch.zeros(ctx.shape, dtype=grad.dtype).reshape(-1)
        gx[index] = grad * factor
        return gx.reshape(ctx.shape), None, None, None, None


def _fast_abs_percentile(self, x: torch.Tensor) -> torch.Tensor:
    """``AbsPercentile.forward`` for ``stats_reduce_dim=None``: ``kthvalue(|x|.view(-1), k)[0]``, exactly.

    Inside :func:`_fast_act_forward` of a ReLU quantizer, ``x`` is the ReLU's *input* (``_fastquant_call``
    set): ``|relu(x)|`` is ``relu(x)``, whose ``r``-th largest is ``relu`` of the ``r``-th largest of ``x``, so
    the ReLU's output need not be formed."""
    orig = type(self).forward
    relu_input, handoff = self.__dict__.get("_fastquant_call", (False, None))
    if self.stats_reduce_dim is not None or x.device.type != "cpu" or x.dtype != torch.float32:
        return orig(self, torch.relu(x) if relu_input else x)
    v = x.reshape(-1)
    n = v.numel()
    k = int(math.floor(0.01 * self.q * n + 0.5))  # as Brevitas: k-th smallest, 1-indexed
    found = _TopRank.find(v.detach(), n - k + 1, "relu" if relu_input else "abs") if 1 <= k <= n else None
    if found is None:
        return orig(self, torch.relu(x) if relu_input else x)
    value, index = found
    return _TopRank.apply(x, value, index, "relu" if relu_input else "abs", handoff)


# --------------------------------------------------------------------------------------------------------
# Wiring into Brevitas modules
# --------------------------------------------------------------------------------------------------------


_BREVITAS_TYPES: dict[str, type] = {}


def _brevitas_types() -> dict[str, type]:
    if not _BREVITAS_TYPES:  # imported once, on first use (Brevitas is slow to import)
        from brevitas.core.function_wrapper import Identity, RoundSte, TensorClamp
        from brevitas.core.quant.delay import _NoDelay
        from brevitas.core.quant.int import RescalingIntQuant
        from brevitas.core.quant.int_base import IntQuant
        from brevitas.core.scaling import ConstScaling, ParameterScaling
        from brevitas.core.stats.stats_op import AbsPercentile
        from brevitas.core.zero_point import ZeroZeroPoint
        from brevitas.proxy.runtime_quant import FusedActivationQuantProxy

        _BREVITAS_TYPES.update(Identity=Identity, RoundSte=RoundSte, TensorClamp=TensorClamp, NoDelay=_NoDelay,
                               RescalingIntQuant=RescalingIntQuant, IntQuant=IntQuant, AbsPercentile=AbsPercentile,
                               ZeroZeroPoint=ZeroZeroPoint, FusedActivationQuantProxy=FusedActivationQuantProxy,
                               ConstScaling=ConstScaling, ParameterScaling=ParameterScaling)
    return _BREVITAS_TYPES


def _supported_act_proxy(m: nn.Module) -> str | None:
    """``"relu"``/``"identity"`` when ``m`` is a ``FusedActivationQuantProxy`` the fast path reproduces."""
    t = _brevitas_types()
    if type(m) is not t["FusedActivationQuantProxy"]:
        return None
    tq = m.tensor_quant
    if type(tq) is not t["RescalingIntQuant"] or type(tq.int_quant) is not t["IntQuant"]:
        return None
    iq = tq.int_quant
    if (type(iq.float_to_int_impl) is not t["RoundSte"] or type(iq.tensor_clamp_impl) is not t["TensorClamp"]
            or type(iq.input_view_impl) is not t["Identity"] or type(iq.delay_wrapper.delay_impl) is not t["NoDelay"]
            or type(tq.zero_point_impl) is not t["ZeroZeroPoint"]):
        return None
    act = m.activation_impl
    if type(act) is nn.ReLU:
        return "relu"
    if type(act) is t["Identity"]:
        return "identity"
    return None


def _fast_act_forward(self, x: torch.Tensor):
    """``FusedActivationQuantProxy.forward`` with the element-wise work in :class:`FakeQuant`."""
    orig = type(self).forward
    if (not self.training or not torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32
            or x.numel() < 4096):
        return orig(self, x)
    tq = self.tensor_quant
    relu = self._fastquant_kind == "relu"
    bit_width = tq.msb_clamp_bit_width_impl()
    int_threshold = tq.int_scaling_impl(bit_width)
    scaling = tq.scaling_impl
    t = _brevitas_types()
    if hasattr(scaling, "counter"):  # ParameterFromRuntimeStatsScaling
        uses_input = scaling.counter < scaling.collect_stats_steps
    else:
        uses_input = type(scaling) not in (t["ConstScaling"], t["ParameterScaling"])
    handoff = None
    if not uses_input:
        scale = scaling(x, int_threshold)  # a constant or learned scale: the input only gives the dtype
    else:
        # Brevitas takes statistics over the activation's output. A switched AbsPercentile takes the ReLU's input
        # and accounts for the ReLU itself (one full-length pass fewer each way); any other statistic gets the
        # activation's output.
        stats = getattr(getattr(scaling, "stats", None), "stats_impl", None)
        if stats is not None and "forward" in stats.__dict__ and hasattr(stats, "q"):
            handoff = _Handoff()
            stats._fastquant_call = (relu, handoff)
            try:
                scale = scaling(x, int_threshold)
            finally:
                del stats._fastquant_call
        else:
            scale = scaling(self.activation_impl(x), int_threshold)
    zero_point = tq.zero_point_impl(x, scale, bit_width)
    if scale.numel() != 1:
        raise RuntimeError("fast quantization supports per-tensor scales only")
    qmin = float(tq.int_quant.min_int(bit_width))
    qmax = float(tq.int_quant.max_int(bit_width))
    y = FakeQuant.apply(x, scale, qmin, qmax, relu, handoff)
    return y, scale, zero_point, bit_width


def fast_quant_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules :func:`fast_quant` would speed up (activation proxies and percentile statistics)."""
    AbsPercentile = _brevitas_types()["AbsPercentile"]
    found = []
    for name, m in model.named_modules():
        if _supported_act_proxy(m) is not None or (type(m) is AbsPercentile and m.stats_reduce_dim is None):
            found.append((name, m))
    return found


@contextlib.contextmanager
def fast_quant(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Within the block, training-mode forward passes of ``model`` use the fast path; yields how many modules
    were switched. Everything is restored on exit (also on error), so evaluation and export after the block run
    Brevitas' own code; in eval mode inside the block Brevitas' code runs too."""
    AbsPercentile = _brevitas_types()["AbsPercentile"]
    patched: list[nn.Module] = []
    try:
        if enabled:
            for _, m in fast_quant_modules(model):
                if "forward" in m.__dict__:
                    continue  # already switched (nested use)
                if type(m) is AbsPercentile:
                    m.forward = types.MethodType(_fast_abs_percentile, m)
                else:
                    m._fastquant_kind = _supported_act_proxy(m)
                    m.forward = types.MethodType(_fast_act_forward, m)
                patched.append(m)
        yield len(patched)
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)
            m.__dict__.pop("_fastquant_kind", None)

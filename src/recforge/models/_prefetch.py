"""A software prefetch for compiled (numba) kernels: ``prefetch(array, index)``.

Random-access SGD loops (BPR's updates touch a random user row, a random positive and random
negative item rows) are bound by memory latency, not arithmetic: each update waits for a few cache
misses in turn. When the addresses are known a few updates ahead (the samples are drawn ahead of
their use), a kernel can ask for those cache lines early so that they arrive while it computes
(Mowry, Lam, Gupta, "Design and Evaluation of a Compiler Algorithm for Prefetching", ASPLOS 1992;
the same trick as in high-performance hash joins and graph kernels). The hint changes no result:
``llvm.prefetch`` only loads a cache line, and is dropped by CPUs that lack the instruction.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch"]


@intrinsic
def prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:  # pragma: no cover - compiled
    """Prefetch the cache line holding ``arr[idx]`` (a 1-d array and an integer index; for a row of
    a 2-d array pass the row view, e.g. ``prefetch(Q[c], 0)``) for reading, kept in all cache levels.

    Out-of-range indices are not checked and are harmless (a prefetch never faults)."""
    if not isinstance(arr, types.Array) or arr.ndim != 1 or not isinstance(idx, types.Integer):
        return None
    sig = types.void(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # (address, 0 = read, 3 = keep in all cache levels, 1 = data cache)
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen

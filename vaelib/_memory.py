"""Memory policy: how big a chunk of samples or grid points is, and how freed memory
is kept for the next chunk."""

import ctypes
import os
import sys

# Numbers per chunk: 4 MiB per float64 array, so a handful of temporaries of shape
# (chunk, N, D) stay in cache and memory use is bounded whatever the sample count.
MAX_CHUNK_ELEMENTS = 2**19


def chunk_sizes(total, per_item):
    """Split ``total`` items of ``per_item`` numbers each into chunks of at most
    MAX_CHUNK_ELEMENTS numbers (at least one item per chunk)."""
    size = max(1, MAX_CHUNK_ELEMENTS // per_item)
    for start in range(0, total, size):
        yield min(size, total - start)


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    The estimators allocate and free chunk-sized temporaries thousands of times. With
    glibc's defaults each one goes back to the kernel and the next is faulted in again
    page by page, which measured 4x slower than the arithmetic itself (S = 5000,
    N = 1000, D = 64: 9 s vs 2.5 s; benchmarks/log_px_is.py); the quadrature of a trained
    network gains about 2x. It changes the whole process's allocator, so importing vaelib
    does not do it: the chapters that integrate trained networks (7, 8) call it. Does
    nothing off glibc or when the user set ``MALLOC_TRIM_THRESHOLD_`` /
    ``MALLOC_MMAP_THRESHOLD_`` themselves.
    """
    if not sys.platform.startswith("linux") or any(
        k in os.environ for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
    ):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)

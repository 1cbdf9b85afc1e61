"""Give the memory a finished song freed back to the system."""
import ctypes
import functools


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


def return_freed_memory() -> None:
    """Give freed memory back to the system: glibc keeps it in its arenas otherwise, so a process that
    separates song after song (the page, a Ray actor, a Python session) only grows. No-op without glibc."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)

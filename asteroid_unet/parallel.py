"""Map a function over items in local worker processes, results in input order.

Used by ``asteroid-unet separate --jobs``, the recipes' evaluation and the quality
benchmark. Workers are spawned (not forked: safe with torch's thread pools and CUDA),
each with its share of the cores, so ``jobs`` workers do not oversubscribe the CPU.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def worker_threads(jobs: int, cores: Optional[int] = None) -> int:
    """Torch threads per worker: the cores shared out between ``jobs`` workers (at least 1)."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, jobs))


def _start_worker(threads: int, initializer: Optional[Callable], initargs: Sequence) -> None:
    import torch

    torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)


def ordered_map(
    fn: Callable[[Item], Result],
    items: Iterable[Item],
    jobs: int = 1,
    initializer: Optional[Callable] = None,
    initargs: Sequence = (),
) -> Iterator[Result]:
    """Yield ``fn(item)`` for every item, in order, computed by ``jobs`` worker processes.

    With ``jobs <= 1`` everything runs in this process (``initializer`` first), with no pool.
    ``fn``, ``initializer`` and the items must be picklable (module-level functions). An
    exception raised by ``fn`` is raised here, at its item's place in the order.

    Args:
        fn: the work for one item.
        items: the inputs.
        jobs (int): worker processes. Default 1 (in this process).
        initializer: called once per worker with ``initargs`` (e.g. to load a model once).
    """
    if jobs <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                             initargs=(worker_threads(jobs), initializer, tuple(initargs))) as pool:
        try:
            yield from pool.map(fn, items)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise

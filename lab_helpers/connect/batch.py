"""Several requests at once, answers in the order asked, one progress bar: how the modules
send a batch (tool loops, agent questions, an evaluation). vLLM batches what arrives
together, so on two CPU cores six conversations take about as long as two."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def at_once(calls: Sequence[Callable[[], T]], *, workers: int, desc: str, unit: str,
            progress: bool = True) -> list[T]:
    """Run `calls` with up to `workers` at a time; their results in order. The first call that
    raises is raised here (the others still finish). A bar counts them (tqdm: a widget in a
    notebook) unless `progress` is False."""
    from tqdm.auto import tqdm  # loaded by the batches that show it

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=len(calls), desc=desc, unit=unit, disable=not progress) as bar:
        def one(call: Callable[[], T]) -> T:
            try:
                return call()
            finally:
                bar.update()

        return list(pool.map(one, calls))

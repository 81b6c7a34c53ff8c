"""A new state database is created once, even when several steps or workers start on it at the same moment."""

import multiprocessing


def _open(url: str, ready, go) -> None:
    from bc_pipeline.state.database import engine_for  # imported before the start line: they race on the tables

    ready.release()
    go.wait(60)
    engine_for(url)


def test_processes_starting_together_on_a_new_state_database_all_get_their_tables(state_url):
    context = multiprocessing.get_context("spawn")
    ready, go = context.Semaphore(0), context.Event()
    processes = [context.Process(target=_open, args=(state_url, ready, go)) for _ in range(8)]
    for process in processes:
        process.start()
    for _ in processes:
        assert ready.acquire(timeout=120)
    go.set()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * 8

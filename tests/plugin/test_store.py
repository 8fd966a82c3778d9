"""The shard store (plugin/store.py): each shard computed once, and the seconds it logs are the
shard's own (the run's "shard work" adds them up: model loading and shards computed inside
another are not counted twice)."""
import time

from plugin.store import ShardStore


def test_a_shard_is_computed_once_and_read_back_by_another_process_store(tmp_path):
    calls = []
    first = ShardStore(tmp_path, "gw0")
    assert first.get("a", lambda: calls.append(1) or {"x": 1}) == {"x": 1}
    assert first.get("a", lambda: calls.append(1) or {"x": 2}) == {"x": 1}
    assert ShardStore(tmp_path, "gw1").get("a", lambda: calls.append(1) or {"x": 3}) == {"x": 1}
    assert calls == [1]
    assert [r["name"] for r in first.drain()] == ["a"] and first.drain() == []


def test_logged_seconds_leave_out_the_model_load_and_nested_shards(tmp_path):
    store = ShardStore(tmp_path)
    loads = []

    def load():
        loads.append(1)
        time.sleep(0.3)

    def outer():
        time.sleep(0.1)
        return store.get("inner", lambda: time.sleep(0.3) or 2, before=load) + 1

    assert store.get("outer", outer, before=load) == 3
    seconds = {r["name"]: r["seconds"] for r in store.drain()}
    assert loads == [1, 1]                                  # before() runs only where a shard is computed
    assert 0.28 <= seconds["inner"] < 0.5
    assert 0.08 <= seconds["outer"] < 0.25, seconds         # without inner's 0.3 s and its load's 0.3 s
    store.get("outer", outer, before=load)
    assert loads == [1, 1] and store.drain() == []


def test_logged_seconds_leave_out_waiting_for_a_shard_another_worker_computes(tmp_path):
    """A shard that needs one another worker is computing waits on its lock: that wait is not
    the outer shard's work (under -n 2 the ladder's first shard once logged 8.7 s this way)."""
    import threading

    other, here = ShardStore(tmp_path, "gw1"), ShardStore(tmp_path, "gw0")
    started = threading.Event()

    def slow():
        started.set()
        time.sleep(0.4)
        return 1

    worker = threading.Thread(target=other.get, args=("chunk", slow))
    worker.start()
    started.wait()

    def outer():
        time.sleep(0.1)
        return here.get("chunk", lambda: 99) + 1      # waits for gw1's file, then reads it

    assert here.get("outer", outer) == 2
    worker.join()
    seconds = {r["name"]: r["seconds"] for r in here.drain()}
    assert list(seconds) == ["outer"] and 0.08 <= seconds["outer"] < 0.3, seconds
    assert [r["name"] for r in other.drain()] == ["chunk"]

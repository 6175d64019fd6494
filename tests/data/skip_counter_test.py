import threading

from florence_keras.data import skip_counter as skip_counter_lib
from florence_keras.data.skip_counter import SkipCounter


def test_counts_reasons_and_first_sources():
    counter = SkipCounter(max_examples=2)
    for i, reason in enumerate(["missing", "corrupt", "missing"]):
        counter.record(reason, f"/data/{i}.jpg")
    assert counter.count == 3
    assert counter.reasons == {"missing": 2, "corrupt": 1}
    assert counter.first_sources == [("/data/0.jpg", "missing"), ("/data/1.jpg", "corrupt")]
    assert "skipped 3" in counter.summary() and "/data/1.jpg (corrupt)" in counter.summary()
    counter.reset()
    assert counter.count == 0 and counter.first_sources == []


def test_recording_from_many_threads_loses_nothing():
    counter = SkipCounter()
    threads = [threading.Thread(target=lambda: [counter.record("corrupt", b"x") for _ in range(500)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.count == 4000 and counter.reasons["corrupt"] == 4000


def test_log_summary_logs_one_line_and_only_when_new(monkeypatch):
    lines = []
    monkeypatch.setattr(skip_counter_lib.logging, "warning", lambda fmt, *args: lines.append(fmt % args))
    counter = SkipCounter(name="train data")
    assert counter.log_summary(only_if_new=True) is False
    counter.record("truncated", "a.jpg")
    assert counter.log_summary(only_if_new=True) is True
    assert counter.log_summary(only_if_new=True) is False  # nothing new since
    assert counter.log_summary() is True  # asked explicitly
    assert len(lines) == 2 and lines[0].startswith("train data: skipped 1") and "a.jpg (truncated)" in lines[0]

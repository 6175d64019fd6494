"""Counts examples an input pipeline skipped, with their reasons and the first few sources.

The tf.data readers never crash on a bad example: a missing, empty, truncated, corrupt or non-image file (or a
record with no text) is dropped and reported here. Reporting is a Python call made only on the failure path of the
pipeline, so good examples never touch Python; counts are exact and include every read (an unreadable file met in
three epochs counts three times).
"""

import collections
import threading

from absl import logging


class SkipCounter:
    """Thread-safe tally of skipped examples.

    Args:
        max_examples: how many skipped sources (paths or `shard:key`) to keep, in the order met.
        name: a name shown in the log line.

    Example:
    >>> counter = SkipCounter()
    >>> counter.record("missing", "/data/a.jpg")
    >>> counter.count, dict(counter.reasons), counter.first_sources
    (1, {'missing': 1}, [('/data/a.jpg', 'missing')])
    """

    def __init__(self, max_examples=5, name="input pipeline"):
        if not isinstance(max_examples, int) or max_examples < 0:
            raise ValueError(f"`max_examples` must be an int >= 0. Received: max_examples={max_examples!r}")
        self.max_examples = max_examples
        self.name = name
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        """Forgets everything recorded so far."""
        with self._lock:
            self._count = 0
            self._reasons = collections.Counter()
            self._first = []
            self._logged_count = 0

    def record(self, reason, source):
        """Records one skipped example.

        Args:
            reason: short str such as `"missing"`, `"truncated"`, `"corrupt"`, `"not_an_image"`, `"too_large"`.
            source: str naming the example (a path, or `shard.tar:key`).
        """
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        source = source.decode("utf-8", "replace") if isinstance(source, bytes) else str(source)
        with self._lock:
            self._count += 1
            self._reasons[reason] += 1
            if len(self._first) < self.max_examples:
                self._first.append((source, reason))

    @property
    def count(self):
        """Total number of skipped examples."""
        with self._lock:
            return self._count

    @property
    def reasons(self):
        """`collections.Counter` reason -> count (a copy)."""
        with self._lock:
            return collections.Counter(self._reasons)

    @property
    def first_sources(self):
        """List of `(source, reason)` for the first `max_examples` skips."""
        with self._lock:
            return list(self._first)

    def summary(self):
        """One line: the count, the reasons and the first sources."""
        with self._lock:
            reasons = ", ".join(f"{reason}={n}" for reason, n in sorted(self._reasons.items()))
            first = "; ".join(f"{source} ({reason})" for source, reason in self._first)
            count = self._count
        if not count:
            return f"{self.name}: no examples skipped."
        more = " ..." if count > len(self._first) else ""
        return f"{self.name}: skipped {count} unreadable example(s) [{reasons}]; first: {first}{more}"

    def log_summary(self, only_if_new=False):
        """Emits the summary as one absl log line (a warning when something was skipped).

        Args:
            only_if_new: log only if something was skipped since the last logged summary (the readers call this
                at the end of every epoch).

        Returns:
            bool, whether a warning was logged.
        """
        with self._lock:
            if only_if_new and self._count == self._logged_count:
                return False
            self._logged_count = self._count
            count = self._count
        if not count:
            logging.info("%s", self.summary())
            return False
        logging.warning("%s", self.summary())
        return True

    def __repr__(self):
        return f"SkipCounter(count={self.count}, reasons={dict(self.reasons)})"


# The counter the readers use unless given another one.
dataset_stats = SkipCounter()

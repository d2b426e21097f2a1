"""What the machine does during the premiere: CPU and RSS of every process (a node counted
with its packaging and transcoding children), and each node's event-loop lag from /metrics.

Samples once a second in a thread, so a busy orchestrator loop does not skew them.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable

import psutil

Series = dict[str, list[tuple[float, float]]]


class Monitor:
    def __init__(
        self, t0: float, processes: Callable[[], dict[str, int]], bases: list[str]
    ) -> None:
        self.t0 = t0
        self.processes = processes
        self.bases = bases
        self.cpu: Series = defaultdict(list)  # label -> (t, cores busy)
        self.rss_mb: Series = defaultdict(list)
        self.loop_lag_ms: Series = defaultdict(list)  # node -> (t, mean lag over the second)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="premiere-monitor", daemon=True)
        self._last_cpu: dict[str, tuple[float, float]] = {}
        self._last_lag: dict[str, tuple[float, float]] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            t = time.time() - self.t0
            for label, pid in self.processes().items():
                self._sample(label, pid, t)
            for i, base in enumerate(self.bases):
                self._lag(f"node{i}", base, t)

    def _sample(self, label: str, pid: int, t: float) -> None:
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
            cpu = rss = 0.0
            for proc in family:
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    rss += proc.memory_info().rss
        except psutil.Error:
            return
        now = time.monotonic()
        last = self._last_cpu.get(label)
        self._last_cpu[label] = (now, cpu)
        self.rss_mb[label].append((t, rss / 2**20))
        if last is not None and now > last[0]:
            self.cpu[label].append((t, max(0.0, (cpu - last[1]) / (now - last[0]))))

    def _lag(self, label: str, base: str, t: float) -> None:
        try:
            with urllib.request.urlopen(f"{base}/metrics", timeout=1) as resp:
                text = resp.read().decode()
        except OSError:
            return
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith("livecore_event_loop_lag_seconds_sum"):
                total = float(line.rsplit(" ", 1)[1])
            elif line.startswith("livecore_event_loop_lag_seconds_count"):
                count = float(line.rsplit(" ", 1)[1])
        last = self._last_lag.get(label)
        self._last_lag[label] = (total, count)
        if last is not None and count > last[1]:
            self.loop_lag_ms[label].append((t, (total - last[0]) / (count - last[1]) * 1000))

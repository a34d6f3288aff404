import os

import numpy as np
import pandas as pd
import pytest

from testbed.files import GrowingCsv, atomic_write_csv, atomic_write_text


def test_atomic_write_replaces_whole_file_and_cleans_up_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    atomic_write_text(target, "old")
    assert target.read_text() == "old" and oct(target.stat().st_mode & 0o777) == "0o644"

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_growing_csv_is_the_csv_of_its_frames_concatenated(tmp_path):
    frames = [pd.DataFrame({"algorithm": [name] * k, "t": np.arange(k), "end_s": np.linspace(0, 1 / 3, k), "peer": ""})
              for name, k in (("a", 3), ("b", 0), ("c", 4))]
    log = GrowingCsv(tmp_path / "events.csv")
    for i, frame in enumerate(frames):
        log.add(frame)
        log.write()
        atomic_write_csv(tmp_path / "whole.csv", pd.concat(frames[: i + 1], ignore_index=True))
        assert (tmp_path / "events.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    with pytest.raises(ValueError, match="events.csv: columns \\['t', 'algorithm'\\] differ"):
        log.add(pd.DataFrame({"t": [1], "algorithm": ["d"]}))

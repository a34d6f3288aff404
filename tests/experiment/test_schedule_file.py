"""schedule.json: the new structure, an old run folder's "spec|seed" keys, refusals."""

import json

import pytest

from testbed.experiment.rundir import read_schedules, schedules_json
from testbed.schedule import Schedule
from testbed.tree import AggregationTree


def test_pairs_round_trip(tmp_path):
    tree = AggregationTree([[0, 1], [2, 3]], [2, 1])
    schedule = Schedule(tree, 0.5, 1)
    for t in range(1, 5):
        schedule.record(schedule.next(t))
    pairs = {("hsgd", 0): schedule.to_json(), ("local:2", 0): Schedule(tree).to_json()}
    (tmp_path / "schedule.json").write_text(json.dumps(schedules_json(pairs)))
    assert read_schedules(tmp_path / "schedule.json") == pairs


def test_an_old_run_folders_schedule_is_read_and_replays(tmp_path):
    (tmp_path / "schedule.json").write_text(json.dumps({"local:2|0": {"1": [0, 3], "3": [1, 2]}, "hsgd|1": {}}))
    pairs = read_schedules(tmp_path / "schedule.json")
    assert set(pairs) == {("local:2", 0), ("hsgd", 1)}
    replayed = Schedule.from_json(AggregationTree([0, 1, 2, 3], [2]), pairs["local:2", 0], "old")
    steps = list(replayed.replay(4))
    assert [s.participants.nonzero()[0].tolist() for s in steps] == [[0, 3], [0, 3], [1, 2], [1, 2]]
    assert [s.aggregating_servers for s in steps] == [(), (0,), (), (0,)]


@pytest.mark.parametrize("content", [[1, 2], {"format": "testbed-schedules/1", "pairs": {"a": 1}}, {"x|y": 3}])
def test_other_content_is_refused_naming_the_file(tmp_path, content):
    (tmp_path / "schedule.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match="schedule.json: .*is this a run folder"):
        read_schedules(tmp_path / "schedule.json")

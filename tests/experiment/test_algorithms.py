import pytest

from testbed.experiment.algorithms import Spec, default_specs, parse_spec, resolve, resolve_all, spec_levels
from testbed.tree import AggregationTree

# cloud -> 2 regional -> 4 edge -> 8 workers, periods 40 / 10 / 2
TOPOLOGY = AggregationTree([[[0, 1], [2, 3]], [[4, 5], [6, 7]]], [40, 10, 2])


def test_local_sgd_collapses_to_the_cloud():
    a = resolve("local:4", TOPOLOGY)
    assert a.is_local_sgd and a.tree.n_levels == 1 and a.tree.servers[0].workers == tuple(range(8))
    assert a.server_topology_ids == (0,) and a.global_period == 4


def test_two_level_variant_keeps_the_chosen_levels():
    a = resolve("hsgd:40,2@0,2", TOPOLOGY)
    assert a.tree.n_levels == 2
    assert [s.workers for s in a.tree.level(1)] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    # the edge servers are the topology's level-2 servers
    assert [TOPOLOGY.servers[i].level for i in a.server_topology_ids] == [0, 2, 2, 2, 2]


def test_hsgd_without_periods_uses_the_topology_periods():
    a = resolve("hsgd", TOPOLOGY)
    assert a.tree.periods == TOPOLOGY.periods and a.label == "H-SGD (40,10,2)"


def test_default_comparison_is_the_sandwich_plus_two_level_variants():
    assert default_specs(TOPOLOGY) == ["hsgd", "local:2", "local:40", "hsgd:40,10@0,1", "hsgd:40,2@0,2"]
    assert len(resolve_all(("auto",), TOPOLOGY)) == 5


@pytest.mark.parametrize(
    "spec, match",
    [
        ("sgd:1", "not an algorithm spec"),
        ("local:a", "integers"),
        ("local:2,3", "one period"),
        ("hsgd:40,3", "not a multiple"),
        ("hsgd:40,2@1,2", "levels must start at 0"),
        ("hsgd:40,2@0,5", "levels must start at 0"),
        ("hsgd:40,2@0", "2 periods for 1 levels"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        resolve(spec, TOPOLOGY)


def test_parse_spec_reads_the_syntax_alone():
    assert parse_spec(" hsgd:40, 2@0,2 ") == Spec("hsgd", (40, 2), (0, 2))
    assert parse_spec("local:4") == Spec("local", (4,), (0,))
    assert parse_spec("hsgd") == Spec("hsgd") and parse_spec("auto") == Spec("auto")
    assert spec_levels("hsgd:40,2", 2) == (0, 1) and spec_levels("local:4", 3) == (0,)
    for bad, rule in [("fedavg", "is not an algorithm spec"), ("local:0", "periods must be"),
                      ("local:4@0", "local SGD takes one period"), ("hsgd:4@x", "levels must be")]:
        with pytest.raises(ValueError, match=rule):
            parse_spec(bad)

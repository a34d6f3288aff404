import pytest

from testbed.tree import AggregationTree


def test_three_level_tree_structure_and_periods():
    tree = AggregationTree([[[0, 1], [2]], [[3, 4], [5]]], [12, [6, 4], [2, 3, 1, 2]])
    assert tree.n_workers == 6 and tree.n_levels == 3
    assert tree.periods == [[12], [6, 4], [2, 3, 1, 2]]
    assert [s.workers for s in tree.level(1)] == [(0, 1, 2), (3, 4, 5)]
    assert [s.id for s in tree.ancestors(4)] == [5, 4, 0]
    assert tree.bottom_server(2).workers == (2,)


def test_top_aggregating_picks_the_highest_due_server_per_subtree():
    tree = AggregationTree([[0, 1], [2, 3, 4]], [10, [2, 5]])
    ids = lambda t: [s.id for s in tree.top_aggregating(t)]
    assert ids(1) == []
    assert ids(2) == [1]  # group 1 (I_1 = 2)
    assert ids(5) == [2]  # group 2 (I_2 = 5)
    assert ids(10) == [0]  # global round: the cloud's average covers both groups
    assert [s.id for s in tree.aggregating(10)] == [0, 1, 2]


@pytest.mark.parametrize(
    "tree, periods, match",
    [
        ([], [1], "non-empty"),
        ([[0, 1], []], [2, 1], "empty group"),
        ([0, 1, 1], [1], "duplicate"),
        ([0, 2], [1], "missing \\[1\\]"),
        ([[0, 1], 2], [2, 1], "same depth"),
        ([0, 1], [0], "periods\\[0\\].*>= 1"),
        ([[0, 1], [2, 3]], [5, 2], "not a multiple"),
        ([[0, 1], [2, 3]], [4, [2, 3]], "not a multiple"),
        ([[0, 1], [2, 3]], [4], "one period per level"),
        ([[0, 1], [2, 3]], [4, [2]], "lists 1 periods but level 1 has 2"),
        ([0, -1], [1], ">= 0"),
        ([0, 1], [1.5], "must be an int"),
    ],
)
def test_bad_trees_are_refused_naming_the_argument(tree, periods, match):
    with pytest.raises(ValueError, match=match):
        AggregationTree(tree, periods)


def test_as_nested_gives_back_the_lists_the_tree_was_built_from():
    nested = [[[0, 1], [2]], [[3, 4], [5]]]
    tree = AggregationTree(tuple(tuple(g) for g in nested), [12, 6, 2])  # tuples in, lists out
    assert tree.as_nested() == nested
    assert AggregationTree(tree.as_nested(), tree.periods).periods == tree.periods
    assert AggregationTree([3, 1, 0, 2], [4]).as_nested() == [3, 1, 0, 2]  # tree order, not sorted

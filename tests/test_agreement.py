"""Inter-annotator agreement (SPEC 17, docs/agreement.md): Krippendorff's alpha of one
field against Krippendorff's own published example and the hand-worked one in the docs,
which annotations count, values compared as JSON, and the cases where alpha is undefined.
Pure functions, no database."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyterhub_annotations.authenticator import agreement as module
from jupyterhub_annotations.authenticator.agreement import Agreement, agreement, check_pointer
from jupyterhub_annotations.authenticator.errors import InvalidInput

PROPERTY = settings(database=None, max_examples=300, deadline=None)

# Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011), section C: nominal
# data, any number of observers, missing data. Rows are observers, columns units 1-12,
# None where the observer gave no value. Published: alpha = 0.743, from n = 40 pairable
# values (unit 12 has one value only and is left out).
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}

# The worked example of docs/agreement.md: cy's annotation of img-3 has no label.
DOCS_EXAMPLE = [
    ("img-1", "ana", {"label": "cat"}),
    ("img-1", "ben", {"label": "cat"}),
    ("img-1", "cy", {"label": "cat"}),
    ("img-2", "ana", {"label": "dog"}),
    ("img-2", "ben", {"label": "dog"}),
    ("img-2", "cy", {"label": "cat"}),
    ("img-3", "ana", {"label": "dog"}),
    ("img-3", "ben", {"label": "dog"}),
    ("img-3", "cy", {"note": "blurry"}),
    ("img-4", "ana", {"label": "bird"}),
    ("img-4", "ben", {"label": "cat"}),
    ("img-4", "cy", {"label": "bird"}),
]


def labelled(rows: dict[str, list]) -> list[tuple[str, str, object]]:
    """Annotations ``{"label": value}`` from a table of rows by annotator, one column per
    item; None: no annotation."""
    return [
        (f"unit-{unit}", owner, {"label": value})
        for owner, values in rows.items()
        for unit, value in enumerate(values, start=1)
        if value is not None
    ]


# -- published and worked examples --------------------------------------------------------


def test_krippendorffs_published_nominal_example_gives_0_743():
    result = agreement("/label", labelled(KRIPPENDORFF_2011))
    assert result.alpha == pytest.approx(0.743, abs=5e-4)
    # Exactly: 1 - (n - 1) * 8 / (n^2 - sum n_c^2) = 1 - 39 * 8 / (1600 - 384) = 113/152.
    assert result.alpha == pytest.approx(113 / 152, rel=1e-12)
    assert (result.items, result.annotators, result.annotations) == (11, 4, 40)
    assert result.reason is None


def test_docs_worked_example_gives_9_over_19():
    result = agreement("/label", DOCS_EXAMPLE)
    assert result.alpha == pytest.approx(9 / 19, rel=1e-12)
    assert result.as_json() == {
        "field": "/label",
        "alpha": result.alpha,
        "items": 4,
        "annotators": 3,
        "annotations": 11,
        "reason": None,
    }


def test_alpha_is_not_rounded():
    alpha = agreement("/label", DOCS_EXAMPLE).alpha
    assert type(alpha) is float
    assert round(alpha, 6) != alpha


# -- which annotations count --------------------------------------------------------------


def test_perfect_agreement_gives_1():
    rows = {"a": ["x", "y", "x"], "b": ["x", "y", "x"], "c": ["x", None, "x"]}
    assert agreement("/label", labelled(rows)).alpha == 1.0


def test_items_with_one_annotation_are_not_counted():
    rows = {"a": ["x", "y", "z", "w"], "b": ["x", "y", None, None]}
    with_singles = agreement("/label", labelled(rows))
    without = agreement("/label", labelled({"a": ["x", "y"], "b": ["x", "y"]}))
    assert (with_singles.items, with_singles.annotations) == (2, 4)
    assert with_singles.alpha == without.alpha == 1.0


def test_annotators_only_on_single_items_are_not_counted():
    rows = {"a": ["x", "y", None], "b": ["y", "y", None], "c": [None, None, "x"]}
    assert agreement("/label", labelled(rows)).annotators == 2


def test_annotation_without_the_field_is_left_out():
    with_gap = agreement("/label", DOCS_EXAMPLE)
    without = agreement("/label", [a for a in DOCS_EXAMPLE if "label" in a[2]])
    assert with_gap == without


def test_pointer_that_does_not_resolve_in_any_way_is_missing_data():
    # A missing member, an index past the end, "-", a step into a string or a number.
    misses = [{"tags": []}, {"tags": "x"}, {"tags": 3}, {}]
    annotations = [
        ("i", "a", {"tags": ["x"]}),
        ("i", "b", {"tags": ["y"]}),
        *((f"j{n}", owner, data) for n, data in enumerate(misses) for owner in "ab"),
    ]
    result = agreement("/tags/0", annotations)
    assert (result.items, result.annotations) == (1, 2)
    assert agreement("/tags/-", annotations).items == 0


def test_deeper_pointers_and_escapes_resolve():
    annotations = [
        ("i", "a", {"a/b": {"~c": "x"}}),
        ("i", "b", {"a/b": {"~c": "y"}}),
    ]
    result = agreement("/a~1b/~0c", annotations)
    assert (result.items, result.annotations) == (1, 2)


def test_empty_pointer_compares_the_whole_data():
    annotations = [("i", "a", {"x": 1}), ("i", "b", {"x": 1}), ("j", "a", [1]), ("j", "b", [2])]
    result = agreement("", annotations)
    assert (result.items, result.annotations) == (2, 4)
    assert result.alpha is not None


def test_two_annotations_of_one_item_by_one_owner_is_a_caller_error():
    with pytest.raises(ValueError, match="two annotations"):
        agreement("/label", [("i", "a", {"label": 1}), ("i", "a", {"label": 2})])
    with pytest.raises(ValueError, match="two annotations"):
        agreement("/label", [("i", "a", {}), ("i", "a", {"label": 2})])


# -- values compare as JSON ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (1, 2),
        (True, False),
        (True, 1),  # equal in Python, different JSON
        (0, False),
        ("1", 1),
        ([1, 2], [2, 1]),
        ({"a": 1}, {"a": 2}),
    ],
)
def test_non_string_values_agree_and_disagree_by_their_json(first, second):
    rows = {"a": [first, first, second, second], "b": [first, first, second, second]}
    assert agreement("/label", labelled(rows)).alpha == 1.0
    rows = {"a": [first, second, first, second], "b": [second, first, first, second]}
    result = agreement("/label", labelled(rows))
    assert result.alpha is not None
    assert result.alpha < 1.0


def test_object_key_order_does_not_matter():
    rows = {"a": [{"x": 1, "y": 2}, "other"], "b": [{"y": 2, "x": 1}, "other"]}
    assert agreement("/label", labelled(rows)).alpha == 1.0


def test_null_is_a_value_not_a_missing_field():
    annotations = [
        ("i", "a", {"label": None}),
        ("i", "b", {"label": None}),
        ("j", "a", {"label": "null"}),
        ("j", "b", {"label": "null"}),
    ]
    result = agreement("/label", annotations)
    assert (result.items, result.alpha) == (2, 1.0)  # null and "null" are two values


# -- undefined alpha ----------------------------------------------------------------------


def test_no_item_with_two_annotations_has_no_alpha():
    result = agreement("/label", labelled({"a": ["x", "y"], "b": [None, None, "z"]}))
    assert result == Agreement("/label", None, 0, 0, 0, result.reason)
    assert "no item has two or more annotations" in result.reason
    assert '"/label"' in result.reason


def test_no_annotations_at_all_has_no_alpha():
    assert agreement("/label", []).alpha is None


def test_one_value_domain_has_no_alpha_but_counts():
    # "y" is on an item with one annotation, so only "x" is used.
    result = agreement("/label", labelled({"a": ["x", "x", "y"], "b": ["x", "x", None]}))
    assert (result.alpha, result.items, result.annotators, result.annotations) == (None, 2, 2, 4)
    assert result.reason.startswith("every annotation has the same value")
    assert "agreement is undefined" in result.reason
    assert result.as_json()["alpha"] is None


def test_other_errors_of_the_library_are_not_swallowed(monkeypatch):
    def broken(**kwargs):
        raise ValueError("something else")

    monkeypatch.setattr(module.krippendorff, "alpha", broken)
    with pytest.raises(ValueError, match="something else"):
        agreement("/label", DOCS_EXAMPLE)


# -- the pointer --------------------------------------------------------------------------


@pytest.mark.parametrize("pointer", ["label", "label/x", " /label", "/a~2", "/a~", "~0"])
def test_bad_pointer_is_invalid_input(pointer):
    with pytest.raises(InvalidInput, match="must be a JSON pointer") as raised:
        check_pointer(pointer)
    assert "/label" in raised.value.message
    with pytest.raises(InvalidInput):
        agreement(pointer, DOCS_EXAMPLE)


@pytest.mark.parametrize("pointer", ["", "/", "/label", "/a/0/b", "/a~0b~1c", "/-"])
def test_good_pointer_passes(pointer):
    check_pointer(pointer)


# -- properties ---------------------------------------------------------------------------

JSON_VALUES = st.one_of(
    st.integers(0, 2),
    st.booleans(),
    st.sampled_from(["x", "y"]),
    st.lists(st.integers(0, 1), max_size=2),
    st.dictionaries(st.sampled_from(["k"]), st.integers(0, 1), max_size=1),
)
DATA = st.one_of(st.fixed_dictionaries({"label": JSON_VALUES}), st.just({"other": 1}))
ANNOTATIONS = st.dictionaries(
    st.tuples(st.sampled_from(["i1", "i2", "i3", "i4", "i5"]), st.sampled_from("abcd")),
    DATA,
    max_size=20,
)


@PROPERTY
@given(ANNOTATIONS, st.randoms(use_true_random=False))
def test_alpha_is_at_most_1_and_the_counts_add_up(annotations, random):
    triples = [(item, owner, data) for (item, owner), data in annotations.items()]
    result = agreement("/label", triples)

    # Oracle: the usable annotations, then the items that keep two of them.
    usable = [(item, owner, data["label"]) for item, owner, data in triples if "label" in data]
    items = {item for item, _, _ in usable}
    used = [u for u in usable if sum(1 for v in usable if v[0] == u[0]) >= 2]
    assert result.items == len({item for item, _, _ in used}) <= len(items)
    assert result.annotations == len(used) >= 2 * result.items
    assert result.annotators == len({owner for _, owner, _ in used}) <= result.annotations
    assert result.annotations <= result.items * result.annotators

    values = {json.dumps(value, sort_keys=True) for _, _, value in used}
    if result.items == 0 or len(values) == 1:
        assert result.alpha is None
        assert result.reason
    else:
        assert result.reason is None
        assert math.isfinite(result.alpha)
        assert result.alpha <= 1

    random.shuffle(triples)
    assert agreement("/label", triples) == result

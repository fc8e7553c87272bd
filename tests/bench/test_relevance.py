"""The synthetic relevance task the MiniLM model is fine-tuned on."""

from bench.relevance import QUERY_KEYWORDS, make_groups

POOL = [f"word{chr(97 + i)}{chr(97 + j)}" for i in range(26) for j in range(26)]


def test_relevance_is_the_share_of_query_keywords_in_the_passage() -> None:
    for pair in make_groups(POOL, groups=5, per_group=20, seed=1):
        keywords = pair.query.split()
        present = sum(1 for word in keywords if word in pair.passage.split())
        assert pair.label == present / QUERY_KEYWORDS


def test_groups_share_their_query_and_are_seeded() -> None:
    pairs = make_groups(POOL, groups=3, per_group=4, seed=7)
    assert len({p.query for p in pairs if p.group == 0}) == 1
    assert pairs == make_groups(POOL, groups=3, per_group=4, seed=7)


def test_every_relevance_grade_occurs() -> None:
    labels = {p.label for p in make_groups(POOL, groups=10, per_group=20, seed=0)}
    assert labels == {0.0, 0.25, 0.5, 0.75, 1.0}

"""The randomisation arithmetic (services.randomisation), pure: reproducible draws, permuted blocks that
end balanced, Pocock-Simon minimisation on hand-checked tables, commitments and uploaded lists."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from itertools import accumulate

import pytest

from services.randomisation import blocks, minimisation
from services.randomisation.blocks import Arm
from services.randomisation.design import Exhausted, ListError, Scheme, allocate, parse_list
from services.randomisation.draws import Draws
from services.randomisation.minimisation import Factor

SEED = bytes(range(32))
AB = (Arm("A", 1), Arm("B", 1))


def test_draws_follow_the_documented_hmac_construction() -> None:
    # The reference: HMAC-SHA256(seed, label | 8-byte big-endian counter), first 8 bytes, big-endian.
    def word(counter: int) -> int:
        digest = hmac.new(SEED, b"S1|" + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big")

    draws = Draws(SEED, "S1")
    assert [draws.below(1000) for _ in range(5)] == [word(n) % 1000 for n in range(5)]
    assert Draws(SEED, "S1").uniform() == (word(0) >> 11) / 2**53
    assert Draws(SEED, "S2").below(1000) != Draws(SEED, "S1").below(1000) or word(0) % 1000 == 0


def test_draws_are_uniform_and_refuse_a_weak_seed() -> None:
    draws = Draws(SEED, "uniform")
    counts = Counter(draws.below(6) for _ in range(6000))
    assert set(counts) == set(range(6)) and all(900 < n < 1100 for n in counts.values())
    with pytest.raises(ValueError, match="128 bits"):
        Draws(b"short", "x")


@pytest.mark.parametrize(
    ("arms", "sizes"),
    [
        (AB, (2, 4, 6)),
        ((Arm("A", 2), Arm("B", 1)), (3, 6)),
        ((Arm("A", 1), Arm("B", 1), Arm("C", 2)), (4, 8)),
    ],
)
def test_every_block_ends_balanced_to_the_ratio(arms: tuple[Arm, ...], sizes: tuple[int, ...]) -> None:
    ratio_sum = sum(arm.ratio for arm in arms)
    for stratum in ("site=S1", "site=S2;diabetes=type2"):
        listed = blocks.stratum_list(SEED, stratum, 600, arms, sizes)
        assert {len(block) for block in listed} == set(sizes)  # every configured size is drawn
        running: Counter[str] = Counter()
        for block in listed:
            running.update(block)
            # At every block end, each arm has exactly its share of everyone allocated so far.
            total = sum(running.values())
            assert {arm.arm_id: running[arm.arm_id] for arm in arms} == {
                arm.arm_id: total * arm.ratio // ratio_sum for arm in arms
            }


def test_the_arm_at_a_position_is_the_lists_entry_there_and_reproducible() -> None:
    listed = [arm for block in blocks.stratum_list(SEED, "site=S1", 100, AB, (2, 4)) for arm in block]
    assert [blocks.arm_at(SEED, "site=S1", p, AB, (2, 4)).arm_id for p in range(1, 101)] == listed[:100]
    again = [arm for block in blocks.stratum_list(SEED, "site=S1", 100, AB, (2, 4)) for arm in block]
    assert again == listed
    other_seed = bytes(32)
    assert [
        arm for block in blocks.stratum_list(other_seed, "site=S1", 100, AB, (2, 4)) for arm in block
    ] != listed
    other_stratum = [arm for block in blocks.stratum_list(SEED, "site=S2", 100, AB, (2, 4)) for arm in block]
    assert other_stratum[:100] != listed[:100]
    placed = blocks.arm_at(SEED, "site=S1", 5, AB, (2, 4))
    ends = list(accumulate(len(block) for block in blocks.stratum_list(SEED, "site=S1", 100, AB, (2, 4))))
    assert placed.block_number == next(n for n, end in enumerate(ends, start=1) if end >= 5)


# A hand-checked table. Earlier participants: female A 3, B 2; male A 4, B 5; site S1 A 5, B 3;
# site S2 A 2, B 4. The newcomer is female, at S1.
TALLIES = {
    "sex": {"female": {"A": 3, "B": 2}, "male": {"A": 4, "B": 5}},
    "site": {"S1": {"A": 5, "B": 3}, "S2": {"A": 2, "B": 4}},
}
NEWCOMER = {"sex": "female", "site": "S1"}
SEX_SITE = (Factor("sex", 1.0), Factor("site", 1.0))


def test_minimisation_imbalance_by_range_on_the_hand_checked_table() -> None:
    # To A: female (4, 2) range 2, S1 (6, 3) range 3, G = 5. To B: female (3, 3) 0, S1 (5, 4) 1, G = 1.
    assert minimisation.imbalances(AB, SEX_SITE, TALLIES, NEWCOMER) == {"A": 5.0, "B": 1.0}
    # Site weighted 0.5: G_A = 2 + 1.5 = 3.5, G_B = 0 + 0.5 = 0.5.
    weighted = (Factor("sex", 1.0), Factor("site", 0.5))
    assert minimisation.imbalances(AB, weighted, TALLIES, NEWCOMER) == {"A": 3.5, "B": 0.5}


def test_minimisation_imbalance_by_variance_and_by_ratio() -> None:
    # Variance: to A, (4, 2) -> 1 and (6, 3) -> 2.25, G = 3.25; to B, (3, 3) -> 0 and (5, 4) -> 0.25.
    assert minimisation.imbalances(AB, SEX_SITE, TALLIES, NEWCOMER, "variance") == {"A": 3.25, "B": 0.25}
    # Ratio 2:1, counts divided by it. To A: female (4/2, 2/1) = (2, 2) 0, S1 (6/2, 3) = (3, 3) 0, G = 0.
    # To B: female (3/2, 3) range 1.5, S1 (5/2, 4) range 1.5, G = 3.
    two_to_one = (Arm("A", 2), Arm("B", 1))
    assert minimisation.imbalances(two_to_one, SEX_SITE, TALLIES, NEWCOMER) == {"A": 0.0, "B": 3.0}
    # Three arms, sex alone, female A 2, B 1, C 1: to A (3, 1, 1) 2; to B (2, 2, 1) 1; to C (2, 1, 2) 1.
    three = (Arm("A", 1), Arm("B", 1), Arm("C", 1))
    tallies = {"sex": {"female": {"A": 2, "B": 1, "C": 1}}}
    choice = minimisation.choose(three, (Factor("sex", 1),), tallies, {"sex": "female"}, 1.0, SEED, 7)
    assert choice.scores == {"A": 2.0, "B": 1.0, "C": 1.0}
    assert choice.preferred == ("B", "C") and choice.arm_id in {"B", "C"}


def test_the_least_imbalanced_arm_is_taken_with_the_configured_probability() -> None:
    for probability in (0.85, 0.7):
        chosen = Counter(
            minimisation.choose(AB, SEX_SITE, TALLIES, NEWCOMER, probability, SEED, n).arm_id
            for n in range(1, 4001)
        )
        assert abs(chosen["B"] / 4000 - probability) < 0.025
    always = {
        minimisation.choose(AB, SEX_SITE, TALLIES, NEWCOMER, 1.0, SEED, n).arm_id for n in range(1, 200)
    }
    assert always == {"B"}


def test_the_first_participant_is_randomised_simply_by_the_ratio() -> None:
    levels = {"sex": "male", "site": "S2"}
    equal = Counter(
        minimisation.choose(AB, SEX_SITE, {}, levels, 0.85, SEED, n).arm_id for n in range(1, 4001)
    )
    assert abs(equal["A"] / 4000 - 0.5) < 0.025
    two_to_one = (Arm("A", 2), Arm("B", 1))
    weighted = Counter(
        minimisation.choose(two_to_one, SEX_SITE, {}, levels, 0.85, SEED, n).arm_id for n in range(1, 4001)
    )
    # The ratio-adjusted scores of an empty trial differ (A 0.5, B 1), but the first participant is
    # randomised simply: A two times in three, not 85%.
    assert abs(weighted["A"] / 4000 - 2 / 3) < 0.025


def test_minimisation_keeps_the_margins_balanced_over_a_trial() -> None:
    scheme = Scheme("minimisation", AB, factors=SEX_SITE, seed=SEED)
    tallies: dict[str, dict[str, dict[str, int]]] = {}
    for n in range(200):
        levels = {"sex": ("female", "male")[n % 3 == 0], "site": ("S1", "S2", "S3")[n % 5 % 3]}
        allocated = allocate(scheme, levels, n, 0, tallies)
        assert allocated.sequence == n + 1
        minimisation.tally(tallies, levels, allocated.arm_id)
    for factor in tallies.values():
        for at_level in factor.values():
            assert abs(at_level.get("A", 0) - at_level.get("B", 0)) <= 3


def test_the_commitment_is_the_documented_hash_and_moves_with_everything_it_fixes() -> None:
    scheme = Scheme("permuted_blocks", AB, strata=("site",), block_sizes=(2, 4), seed=SEED)
    fixed = {
        "algorithm": "accrual-permuted-blocks/1", "method": "permuted_blocks", "arms": [["A", 1], ["B", 1]],
        "strata": ["site"], "block_sizes": [2, 4], "factors": [], "probability": 0.85, "imbalance": "range",
        "seed": SEED.hex(),
    }  # fmt: skip
    expected = hashlib.sha256(json.dumps(fixed, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert scheme.commitment() == f"sha256:{expected}"
    others = [
        Scheme("permuted_blocks", AB, strata=("site",), block_sizes=(2, 4), seed=bytes(32)),
        Scheme("permuted_blocks", AB, strata=("site",), block_sizes=(4,), seed=SEED),
        Scheme("permuted_blocks", (Arm("A", 2), Arm("B", 1)), strata=("site",), block_sizes=(3,), seed=SEED),
        Scheme("minimisation", AB, factors=(Factor("site", 1),), seed=SEED),
    ]
    assert len({scheme.commitment(), *(other.commitment() for other in others)}) == 5


LIST = "sequence,stratum,arm\n3,site=S1,B\n1,site=S1,A\n2,site=S2,B\n4,site=S2,A\n"


def test_an_uploaded_list_is_used_in_order_within_each_stratum() -> None:
    base = Scheme("permuted_blocks", AB, strata=("site",), seed=SEED)
    listed = parse_list(LIST, base)
    scheme = Scheme("permuted_blocks", AB, strata=("site",), seed=SEED, listed=listed)
    assert [entry.sequence for entry in listed] == [1, 2, 3, 4]
    s1 = {"site": "S1"}
    assert allocate(scheme, s1, 0, 0, {}) == allocate(scheme, s1, 5, 0, {})  # by stratum, not trial
    assert (allocate(scheme, s1, 0, 0, {}).sequence, allocate(scheme, s1, 0, 0, {}).arm_id) == (1, "A")
    assert (allocate(scheme, s1, 1, 1, {}).sequence, allocate(scheme, s1, 1, 1, {}).arm_id) == (3, "B")
    with pytest.raises(Exhausted, match="site=S1"):
        allocate(scheme, s1, 2, 2, {})
    with pytest.raises(Exhausted, match="site=S3"):
        allocate(scheme, {"site": "S3"}, 0, 0, {})
    assert scheme.commitment() != base.commitment()


@pytest.mark.parametrize(
    ("text", "row", "detail"),
    [
        ("seq,stratum,arm\n1,site=S1,A", 1, "header"),
        ("sequence,stratum,arm\n1,site=S1,A\n1,site=S2,B", 3, "appears twice"),
        ("sequence,stratum,arm\n1,site=S1,C", 2, "not one of the scheme's arms"),
        ("sequence,stratum,arm\n1,S1,A", 2, "site=<value>"),
        ("sequence,stratum,arm\nx,site=S1,A", 2, "whole number"),
        ("sequence,stratum,arm\n1,site=S1", 2, "3 columns"),
        ("sequence,stratum,arm\n", None, "no rows"),
        ("sequence,stratum,arm\n\u00b2,site=S1,A", 2, "whole number"),
        ("sequence,stratum,arm\n99999999999,site=S1,A", 2, "whole number from 1 to 999999999"),
        ("sequence,stratum,arm\n1,site=S1\x00,A", 2, "is not labelled as"),
        ('sequence,stratum,arm\n1,site="' + "x" * 200_000 + '",A', None, "not readable as CSV"),
    ],
)
def test_a_bad_list_is_refused_naming_its_row(text: str, row: int | None, detail: str) -> None:
    with pytest.raises(ListError, match=detail) as refused:
        parse_list(text, Scheme("permuted_blocks", AB, strata=("site",), seed=SEED))
    assert refused.value.row == row

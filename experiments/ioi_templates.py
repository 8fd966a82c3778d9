"""Indirect-object-identification (IOI) prompts and their donors, seeded.

    pairs = generate_pairs(tokenizer, n=100, seed=0)     # list[IOIPair]
    pairs[0].recipient  'When Mary and John went to the store, John gave a drink to'   -> ' Mary'
    pairs[0].donor      'When John and Mary went to the store, Mary gave a drink to'   -> ' John'

A template names its slots {IO} (the indirect object: the name the sentence should end
with), {S} (the subject: the other name, mentioned twice), {PLACE} and {OBJECT}. The donor
is the recipient with the two names swapped everywhere, so the two prompts have the same
tokens except at the names, and the same length, for any tokenizer whose names are single
tokens. Both are checked for every pair (`make_pair`), and every name must be ONE token
with its leading space (" Mary"), because the metric compares the logits of exactly two
tokens at the last position.

`tokenizer` is anything with `encode(text, add_special_tokens=...) -> list[int]` and
`decode(ids) -> str`: a Hugging Face tokenizer, or a small stand-in for a random model.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Sequence

FIELDS = ("IO", "S", "PLACE", "OBJECT")

# The classic IOI form: two names introduced together, the subject mentioned again, and the
# sentence stops where the indirect object is due. ABBA = IO introduced first, BABA = S first.
# Every slot follows a space, so a name is tokenized as its " Name" token wherever it occurs.
TEMPLATES = (
    "When {IO} and {S} went to the {PLACE}, {S} gave a {OBJECT} to",                    # ABBA
    "After {IO} and {S} arrived at the {PLACE}, {S} gave a {OBJECT} to",                # ABBA
    "While {IO} and {S} were working at the {PLACE}, {S} gave a {OBJECT} to",           # ABBA
    "Then, {IO} and {S} had a long day at the {PLACE}. {S} gave a {OBJECT} to",         # ABBA
    "When {IO} and {S} got a {OBJECT} at the {PLACE}, {S} decided to give it to",       # ABBA
    "When {S} and {IO} went to the {PLACE}, {S} gave a {OBJECT} to",                    # BABA
    "Then, {S} and {IO} went to the {PLACE}. {S} handed a {OBJECT} to",                 # BABA
    "After the lunch at the {PLACE}, {S} and {IO} talked, and {S} gave a {OBJECT} to",  # BABA
)

# Common English first names; `generate_pairs` keeps those that are one token for the
# tokenizer at hand (each tokenizer splits a different few).
NAMES = (
    "Aaron", "Adam", "Alan", "Alex", "Alice", "Amy", "Andrew", "Anna", "Anthony", "Arthur",
    "Ben", "Bill", "Bob", "Brian", "Carl", "Carol", "Charles", "Chris", "Daniel", "David",
    "Dean", "Diana", "Edward", "Emily", "Emma", "Eric", "Eva", "Frank", "Fred", "George",
    "Grace", "Harry", "Helen", "Henry", "Ian", "Jack", "Jacob", "Jake", "James", "Jane",
    "Jason", "Jeff", "Jennifer", "Jessica", "Jim", "Joe", "John", "Jordan", "Joseph", "Julia",
    "Justin", "Kate", "Kelly", "Kevin", "Kyle", "Laura", "Leo", "Lisa", "Louis", "Lucy",
    "Luke", "Maria", "Mark", "Martin", "Mary", "Max", "Michael", "Mike", "Nancy", "Nick",
    "Oliver", "Paul", "Peter", "Rachel", "Richard", "Robert", "Rose", "Ruby", "Ryan", "Sam",
    "Sarah", "Scott", "Sean", "Simon", "Sophie", "Steve", "Susan", "Thomas", "Tim", "Tom",
    "Tony", "Victoria", "Walter", "William", "Zoe",
)
PLACES = ("store", "garden", "restaurant", "school", "hospital", "office", "station", "park",
          "house", "market", "library", "museum")
OBJECTS = ("drink", "ring", "book", "bone", "basketball", "computer", "necklace", "snack",
           "letter", "bottle", "cake", "kiss")


@dataclass(frozen=True)
class IOIPair:
    """One recipient prompt and its donor (the same sentence with the names swapped).

    recipient_ids, donor_ids: token ids, equal length (checked); the final position is the
    last one, where the next token should be the indirect object. correct_id: the token of
    " " + io (the recipient's answer); other_id: the token of " " + s.
    """

    template: str
    io: str
    s: str
    recipient: str
    donor: str
    recipient_ids: tuple[int, ...]
    donor_ids: tuple[int, ...]
    correct_id: int
    other_id: int

    def __post_init__(self):
        if len(self.recipient_ids) != len(self.donor_ids):
            raise ValueError(
                f"recipient {self.recipient!r} has {len(self.recipient_ids)} tokens but its donor "
                f"{self.donor!r} has {len(self.donor_ids)}: patching position by position needs the same "
                "length; use names (and places, objects) that tokenize alike in both, or build the pair "
                "with make_pair, which checks it")
        if self.correct_id == self.other_id:
            raise ValueError(f"the two names {self.io!r} and {self.s!r} are the same token "
                             f"{self.correct_id}: pick two different names")

    @property
    def final(self) -> int:
        """The position read out: the last token of both prompts."""
        return len(self.recipient_ids) - 1


def name_token(tokenizer, name: str) -> int:
    """The single token id of " " + name; a ValueError naming the name and its pieces otherwise."""
    ids = list(tokenizer.encode(" " + name, add_special_tokens=False))
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise ValueError(
            f"the name {name!r} is {len(ids)} tokens for this tokenizer ({pieces!r}), not one: the logit "
            "difference compares two single tokens; pick another name list, drop this name, or pass "
            "skip_multi_token_names=True to drop every such name")
    return ids[0]


def single_token_names(tokenizer, names: Sequence[str] = NAMES, skip_multi_token_names: bool = False
                       ) -> dict[str, int]:
    """{name: token id of " " + name} for `names`, in order.

    A name of several tokens raises the ValueError of `name_token`, unless
    skip_multi_token_names=True, which leaves it out instead.
    """
    kept = {}
    for name in names:
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValueError(f"name {name!r} must be a non-empty word without surrounding spaces "
                             "(the leading space is added here)")
        try:
            kept[name] = name_token(tokenizer, name)
        except ValueError:
            if not skip_multi_token_names:
                raise
    return kept


def check_template(template: str) -> None:
    """A ValueError unless `template` uses only the fields {IO}, {S}, {PLACE}, {OBJECT}, and both names."""
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as err:
        raise ValueError(f"template {template!r} is not a valid format string ({err}); write the slots "
                         f"as {{IO}}, {{S}}, {{PLACE}}, {{OBJECT}} and double any literal brace") from None
    unknown = sorted(used - set(FIELDS))
    if unknown:
        raise ValueError(f"template {template!r} has unknown field(s) {unknown}: the fields are "
                         f"{', '.join('{' + f + '}' for f in FIELDS)}")
    missing = [f for f in ("IO", "S") if f not in used]
    if missing:
        raise ValueError(f"template {template!r} lacks {', '.join('{' + f + '}' for f in missing)}: an IOI "
                         "prompt names both the indirect object {IO} and the subject {S}")


def make_pair(tokenizer, template: str, io: str, s: str, place: str = PLACES[0], obj: str = OBJECTS[0]
              ) -> IOIPair:
    """The recipient (template filled with io, s) and its donor (io and s swapped), tokenized and checked.

    Raises a ValueError for an unknown template field, a name of several tokens, or a pair
    whose two prompts do not differ exactly at the names (e.g. a name placed where it is not
    preceded by a space, so the tokenizer sees another token).
    """
    check_template(template)
    if io == s:
        raise ValueError(f"io and s are both {io!r}: an IOI prompt needs two different names")
    correct_id, other_id = name_token(tokenizer, io), name_token(tokenizer, s)
    recipient = template.format(IO=io, S=s, PLACE=place, OBJECT=obj)
    donor = template.format(IO=s, S=io, PLACE=place, OBJECT=obj)
    recipient_ids = tuple(tokenizer.encode(recipient))
    donor_ids = tuple(tokenizer.encode(donor))
    pair = IOIPair(template, io, s, recipient, donor, recipient_ids, donor_ids, correct_id, other_id)
    swap = {correct_id: other_id, other_id: correct_id}
    if donor_ids != tuple(swap.get(i, i) for i in recipient_ids) or correct_id not in recipient_ids:
        raise ValueError(
            f"the donor {donor!r} is not the recipient {recipient!r} with the name tokens {io!r} and {s!r} "
            "swapped: every name slot must follow a space (so it is the ' Name' token) and no place or "
            "object may contain a name; fix the template or the word lists")
    return pair


def generate_pairs(tokenizer, n: int = 100, seed: int = 0, *, templates: Sequence[str] = TEMPLATES,
                   names: Sequence[str] | None = None, places: Sequence[str] = PLACES,
                   objects: Sequence[str] = OBJECTS, skip_multi_token_names: bool = False) -> list[IOIPair]:
    """`n` distinct IOI pairs, the same for the same seed, tokenizer and lists.

    names=None: the default NAMES, filtered to the names that are one token for this
    tokenizer. A caller's list must be all single tokens (else the ValueError of
    `name_token`), unless skip_multi_token_names=True. Fewer than two usable names, or
    fewer distinct prompts than `n`, is a ValueError that says so.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}: ask for at least one pair")
    if not templates or not places or not objects:
        raise ValueError("templates, places and objects must each hold at least one entry")
    for template in templates:
        check_template(template)
    if names is None:
        usable = single_token_names(tokenizer, NAMES, skip_multi_token_names=True)
    else:
        usable = single_token_names(tokenizer, list(names), skip_multi_token_names)
    pool = list(usable)
    if len(pool) < 2:
        raise ValueError(f"only {len(pool)} single-token name(s) for this tokenizer ({pool}): pass names= "
                         "with at least two names that are one token each")
    possible = len(templates) * len(pool) * (len(pool) - 1) * len(set(places)) * len(set(objects))
    if possible < n:
        raise ValueError(f"n={n} pairs asked, but these templates, names, places and objects make only "
                         f"{possible} distinct prompts: ask for fewer or pass longer lists")
    rng = random.Random(seed)
    seen, pairs = set(), []
    while len(pairs) < n:
        template = rng.choice(templates)
        io, s = rng.sample(pool, 2)
        place, obj = rng.choice(places), rng.choice(objects)
        key = (template, io, s, place, obj)
        if key in seen:
            continue
        seen.add(key)
        pairs.append(make_pair(tokenizer, template, io, s, place, obj))
    return pairs

"""``prepare``: how a raw dataset becomes a prepared one (filters, truncation, the split, new items)."""
from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

from .errors import ConfigError, _check


@dataclass
class PrepareConfig:
    """How a raw dataset becomes a prepared one (the paper's section 3.1)."""

    min_user_interactions: int = 5  # the paper removes users with fewer than 5
    min_item_interactions: int = 0  # warm-N setting: drop items with fewer than N (applied before the user filter)
    dedup: str = "first"  # first | last | none: which of a user's repeated (user, item) pairs is kept
    max_seq_len: int = 0  # keep each user's latest N interactions (paper: 23 text, 13 image); 0 = keep all
    n_users: int = 0  # subsample this many users at random (paper Table 4: 50K); 0 = all
    image_size: int = 0  # decode + resize every item image once into the image store now (paper: 224); 0 = on first use
    image_missing: str = "error"  # error | blank: an item image that is missing or unreadable stops prepare, or is
    # listed in the prepared folder's image_problems.json and gets a blank image wherever the dataset is used
    new_items: float = 0  # new-item setting: hold out this fraction (< 1) or count (>= 1) of items, drawn from
    # the items that end some user's sequence; every interaction with them is removed except a user's last one
    # (their test target), so they never appear in training (paper Table 9)
    # The split: loo = leave-one-out (each user's last item is the test target, the one before it the valid target);
    # time = one global time line: nothing at or after the valid cut is trained on, a user's valid target is
    # their first item in [valid cut, test cut) and their test target the first at or after the test cut
    # (users with nothing in a period are not scored on it). A cut is time_valid / time_test (in the data's
    # timestamp unit), or else the time that leaves test_share of the interactions at or after the test cut and
    # valid_share between the cuts (ties at a cut go after it, so a share is a lower bound).
    split: str = "loo"
    time_valid: float | str | None = None  # the valid cut: a time in the data's unit, or a date / datetime (2024-05-15)
    time_test: float | str | None = None  # the test cut, the same way; a datetime without a zone is read as UTC
    valid_share: float = 0.1  # split=time without time_valid: the share of interactions between the two cuts
    test_share: float = 0.1  # split=time without time_test: the share of interactions at or after the test cut
    seed: int = 42  # seeds the user subsample and the new-item draw
    title_column: str = ""  # the text column shown as an item's title (recommend, serve, reports); "" = the first
    # an item table whose ids match less than this share of the interacted items is an error (ids exported as
    # floats, lost zeros), not a catalogue of empty content; 0 = keep unmatched items with empty content
    min_content_match: float = 0.5
    # ids that differ only by surrounding spaces or Unicode normalisation (' u1' / 'u1'): refuse (an error
    # listing them) | merge (each group read as one id, trimmed and NFC-normalised; the log says which)
    id_variants: str = "refuse"

    def validate(self) -> None:
        _check(self.split in ("loo", "time"), f"prepare.split must be loo or time, not {self.split!r}")
        _check(self.id_variants in ("refuse", "merge"),
               f"prepare.id_variants must be refuse or merge, not {self.id_variants!r}")
        _check(0 < self.valid_share < 1 and 0 < self.test_share < 1 and self.valid_share + self.test_share < 1,
               f"prepare.valid_share ({self.valid_share}) and prepare.test_share ({self.test_share}) must be in (0, 1) "
               "and sum to less than 1")
        valid, test = cut_time(self.time_valid, "prepare.time_valid"), cut_time(self.time_test, "prepare.time_test")
        _check(valid is None or test is None or valid[0] != test[0] or valid[1] < test[1],
               f"prepare.time_valid ({self.time_valid}) must be before prepare.time_test ({self.time_test})")
        _check(valid is None or test is None or valid[0] == test[0],
               f"prepare.time_valid ({self.time_valid}) and prepare.time_test ({self.time_test}) must both be numbers "
               "or both be dates")
        _check(self.split == "time" or (self.time_valid is None and self.time_test is None),
               "prepare.time_valid / time_test are cut times of prepare.split=time; set that too")
        _check(self.min_user_interactions >= 3, "prepare.min_user_interactions must be >= 3 (train, valid and test need one item each)")
        _check(self.min_item_interactions >= 0, "prepare.min_item_interactions must be >= 0")
        _check(0 <= self.min_content_match <= 1, "prepare.min_content_match must be in [0, 1]")
        _check(self.dedup in ("first", "last", "none"), f"prepare.dedup must be first, last or none, not {self.dedup!r}")
        _check(self.max_seq_len == 0 or self.max_seq_len >= 3, "prepare.max_seq_len must be 0 (keep all) or >= 3")
        _check(self.n_users >= 0, "prepare.n_users must be >= 0")
        _check(self.image_size == 0 or self.image_size >= 16, "prepare.image_size must be 0 (on first use) or >= 16 pixels")
        _check(self.image_missing in ("error", "blank"),
               f"prepare.image_missing must be error or blank, not {self.image_missing!r}")
        _check(self.new_items >= 0 and (self.new_items < 1 or float(self.new_items).is_integer()),
               f"prepare.new_items must be a fraction in [0, 1) or a whole number of items, not {self.new_items!r}")


def cut_time(value: float | str | None, where: str) -> tuple[str, float] | None:
    """A time cut as ("number", value in the data's unit) or ("date", seconds since 1970 UTC); a date or datetime
    without a zone is read as UTC, as the readers read such dates in the data."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return "number", float(value)
    try:
        number = float(value)
        if math.isfinite(number):
            return "number", number
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(f"{where}={value!r} is neither a number (in the data's time unit) nor an ISO date or "
                          "datetime such as 2024-05-15 or 2024-05-15T12:00:00+02:00") from None
    return "date", (when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)).timestamp()

"""The paper's datasets as the paper prepared them: presets, untimed MIND history, id checks and paths, on small
generated files in the official layouts (tests/paper_layouts.py)."""
import json

import numpy as np
import pytest

from morec import api
from morec.cli import main
from morec.data.formats import DataFormatError
from morec.report.discovery import preset_label
from paper_layouts import customer, write_hm, write_mind

VALID, TEST = 1573776000, 1573819200  # 11/15/2019 00:00 and 12:00 UTC
SEC31 = "section 3.1: "


def sequences(ds) -> dict[str, list[str]]:
    ids = ds.items["item"].to_numpy()
    return {user: list(ids[ds.sequence(u) - 1]) for u, user in enumerate(ds.users["user"])}


def prepared(source, out, log=None, **kwargs):
    lines = [] if log is None else log
    return api.prepare_dataset(source, out, log=lines.append, **kwargs), lines


@pytest.fixture(scope="module")
def mind(tmp_path_factory):
    return write_mind(tmp_path_factory.mktemp("raw") / "MIND")


@pytest.fixture(scope="module")
def hm(tmp_path_factory):
    pytest.importorskip("PIL")
    return write_hm(tmp_path_factory.mktemp("raw") / "HM")


def test_mind_preset_is_detected_cited_recorded_and_truncates(mind, tmp_path):
    ds, log = prepared(mind, tmp_path / "p")
    assert log[0] == ("[preset] MIND (paper preset) (detected from the mind format; --preset none keeps plain "
                      "defaults): max_seq_len=23, min_user_interactions=5, split=loo, text_columns=['title']")
    assert sequences(ds) == {
        "U10": ["N1", "N2", "N3", "N4", "N5", "N6"],  # history (untimed), then train and dev clicks
        "U50": [f"N{k}" for k in range(14, 36)] + ["N1"],  # 25 history clicks + 1: the latest 23
        "U20": ["N2", "N7", "N8", "N9", "N10", "N4"],  # dev only, 12:05 AM before 1:00 PM
        "U40": ["N1", "N2", "N3", "N8", "N9"],  # no history; 12:15 PM on 11/9; N3 and N8 in file order
    }  # U30 (4 clicks) is below the paper's 5
    preset = ds.manifest["preset"]
    assert preset["name"] == "mind" and preset["label"] == "MIND (paper preset)" and not preset["changed"]
    assert preset["settings"] == {"max_seq_len": 23, "min_user_interactions": 5, "split": "loo",
                                  "text_columns": ["title"]}
    assert all(v.startswith(("section 3.1", "section 3.4")) for v in preset["sources"].values())
    assert ds.manifest["prepare"]["max_seq_len"] == 23 and ds.text_columns == ["title"]
    assert ds.manifest["untimed_interactions"] == 3 + 22 + 4


def test_mind_log_names_each_folder_and_what_it_gave(mind, tmp_path):
    _, log = prepared(mind, tmp_path / "p")
    assert log[1:3] == [
        f"[MIND] reader: read {mind}/MINDsmall_train: 7 impressions of 3 users -> 28 history clicks (untimed), "
        "8 impression clicks from 2019-11-09 09:00 to 2019-11-14 11:00; 33 news",
        f"[MIND] reader: read {mind}/MINDsmall_dev: 4 impressions of 3 users -> 7 history clicks (untimed), "
        "4 impression clicks from 2019-11-15 00:05 to 2019-11-15 23:59; 9 news",
    ]


def test_time_split_keeps_every_dev_only_user_and_never_targets_history(mind, tmp_path):
    ds, _ = prepared(mind, tmp_path / "p", prepare_cfg={"split": "time", "time_valid": VALID, "time_test": TEST,
                                                        "min_user_interactions": 3})
    seqs = sequences(ds)
    assert seqs["U30"] == ["N1", "N3", "N5", "N7"] and seqs["U20"] == ["N2", "N7", "N8", "N9", "N10", "N4"]
    positions = dict(zip(ds.users["user"], ds.split_positions.tolist()))
    assert positions == {"U10": [5, 5, -1], "U50": [23, -1, -1], "U20": [4, 4, 5], "U30": [3, -1, 3],
                         "U40": [5, -1, -1]}
    times = np.load(ds.path / "seq_times.npy")
    untimed = np.isnan(times)
    assert untimed.sum() == 3 + 22 + 4 + 3
    for split in ("valid", "test"):  # every target is a timed click
        pos = ds.split_positions[:, 1 if split == "valid" else 2]
        scored = pos >= 0
        assert not untimed[ds.offsets[:-1][scored] + pos[scored]].any()
    u30 = list(ds.users["user"]).index("U30")
    assert untimed[ds.offsets[u30]:ds.offsets[u30 + 1]].tolist() == [True, True, True, False]


def test_share_placed_cuts_count_only_timed_interactions(mind, tmp_path):
    ds, _ = prepared(mind, tmp_path / "p", prepare_cfg={"split": "time", "min_user_interactions": 3,
                                                        "valid_share": 0.2, "test_share": 0.2})
    # 12 timed clicks remain: the test cut leaves ceil(2.4) = 3 after it, the valid cut ceil(4.8) = 5
    cuts = ds.manifest["time_cuts"]
    assert (cuts["valid"], cuts["test"]) == (1573729200.0, 1573804800.0)  # 11/14 11:00 AM, 11/15 8:00 AM
    assert dict(zip(ds.users["user"], ds.split_positions.tolist())) == {
        "U10": [5, -1, 5], "U50": [23, -1, -1], "U20": [4, 4, 5], "U30": [3, -1, 3], "U40": [4, 4, -1]}


def test_stats_span_only_timed_interactions(mind, tmp_path, capsys):
    ds, _ = prepared(mind, tmp_path / "p")
    summary = ds.sequence_summary()
    assert summary["first_date"] == "2019-11-09 09:00:00" and summary["last_date"] == "2019-11-15 13:00:00"
    assert summary["untimed"] == 29
    assert main(["data", "stats", str(tmp_path / "p"), "--plot", str(tmp_path / "pop.png")]) == 0
    assert ("time span: 2019-11-09 09:00:00 to 2019-11-15 13:00:00 (6.17 days); 29 untimed interactions (a history "
            "without times) are not in it") in capsys.readouterr().out


def test_empty_text_says_what_the_encoder_still_reads(mind, tmp_path):
    _, log = prepared(mind, tmp_path / "p", preset="none", text_columns="title,abstract")
    assert "[MIND] 1 of 35 catalogue items have an empty title (e.g. item 'N9'); they have no other text: a text " \
           "encoder sees only special tokens for them" in log
    assert "[MIND] 2 of 35 catalogue items have an empty abstract (e.g. item 'N3'); a text encoder still reads the " \
           "title of 1; 1 have no text at all (e.g. item 'N9'): it sees only special tokens for those" in log
    assert not any(line.startswith("[preset]") for line in log)


def test_preset_none_and_changed_values_are_recorded(mind, tmp_path):
    plain, _ = prepared(mind, tmp_path / "plain", preset="none")
    assert "preset" not in plain.manifest and len(sequences(plain)["U50"]) == 26
    changed, log = prepared(mind, tmp_path / "changed", prepare_cfg={"max_seq_len": 10})
    assert log[0].endswith("min_user_interactions=5, split=loo, text_columns=['title']; kept your max_seq_len=10")
    assert changed.manifest["preset"]["label"] == "MIND (paper preset), changed: max_seq_len"
    assert changed.identity()["preset"] == {"name": "mind", "label": "MIND (paper preset), changed: max_seq_len"}
    assert preset_label("MIND", {"label": "MIND (paper preset)"}) == "MIND (paper preset)"
    assert preset_label("mind-50k", {"label": "MIND (paper preset)"}) == "mind-50k (MIND (paper preset))"
    with pytest.raises(DataFormatError, match=r"^--preset hm: the source is in the mind format, and the hm preset "
                                              r"applies to hm / lmdb; pass --format or another --preset$"):
        prepared(mind, tmp_path / "x", preset="hm")


def test_hm_preset_latest_13_min_5_images_224(hm, tmp_path):
    ds, log = prepared(hm, tmp_path / "p")
    assert log[0] == ("[preset] HM (paper preset) (detected from the hm format; --preset none keeps plain defaults): "
                      "max_seq_len=13, min_user_interactions=5, image_size=224, split=loo")
    article = lambda k: f"{108775015 + k:010d}"  # noqa: E731
    assert sequences(ds) == {
        customer(1): [article(k) for k in range(2, 15)],  # 15 purchases: the latest 13
        customer(2): [article(k) for k in (3, 1, 15, 7, 9)],  # same day in file order; the repeat of 3 dropped
    }  # customer 3's four purchases are below 5; ids that lost their zero are restored
    assert ds.manifest["preset"]["sources"]["image_size"] == SEC31 + "'setting the size of all images to 224 x 224'"
    assert "[HM] image store: 15 of 15 item images decoded and resized to 224x224" in "\n".join(log)
    content = ds.items.set_index("item").loc[article(2)]
    assert (content["title"], content["description"]) == ("Strap top, 2-pack", 'Jersey top with "narrow" straps.')


def test_hm_float_ids_are_an_error_naming_both_forms(tmp_path):
    pytest.importorskip("PIL")
    raw = write_hm(tmp_path / "HM", float_ids=True)
    with pytest.raises(DataFormatError) as err:
        prepared(raw, tmp_path / "p", preset="none")
    assert str(err.value) == (
        "[HM] the item table's ids match 0 of 16 interacted items (0%): its ids look like '108775015.0', the "
        "interactions' like '0108775015'. Make the two id columns agree (export the item ids as text: no '.0', no "
        "lost leading zeros), or pass --prepare.min_content_match=0 to keep those items with empty content")
    # (their images cannot be found either: blanks are asked for too, since a missing image stops prepare)
    ds, _ = prepared(raw, tmp_path / "q", preset="none", prepare_cfg={"min_content_match": 0, "image_missing": "blank"})
    assert (ds.items["title"] == "").all()  # kept empty only when asked


def test_flattened_images_do_not_change_the_sequences(tmp_path):
    pytest.importorskip("PIL")
    nested, _ = prepared(write_hm(tmp_path / "a" / "HM"), tmp_path / "p", preset="none")
    with pytest.raises(DataFormatError, match="16 of 16 item images are missing"):  # said at prepare, not later
        prepared(write_hm(tmp_path / "b" / "HM", flat_images=True), tmp_path / "q", preset="none")
    flat, _ = prepared(tmp_path / "b" / "HM", tmp_path / "q", preset="none", prepare_cfg={"image_missing": "blank"})
    assert sequences(flat) == sequences(nested) and len(sequences(flat)[customer(1)]) == 15  # no latest-13


@pytest.mark.parametrize("file, fmt", [("MINDsmall_dev/behaviors.tsv", None), ("MINDsmall_dev/news.tsv", "mind")])
def test_a_mind_file_reads_its_folder(mind, tmp_path, capsys, file, fmt):
    args = ["data", "prepare", str(mind / file), "--out", str(tmp_path / "p"), "--prepare.min_user_interactions=3"]
    assert main(args + (["--format", fmt] if fmt else [])) == 0
    out = capsys.readouterr().out
    assert f"[MINDsmall_dev] reader: {mind / file} is the mind layout's {file.split('/')[1]}: read its folder " \
           f"{mind / 'MINDsmall_dev'}\n" in out
    assert json.loads(out.strip().splitlines()[-1])["users"] == 3


def test_a_file_given_to_a_folder_format_names_both(mind, hm, tmp_path, capsys):
    tx = hm / "transactions_train.csv"
    assert main(["data", "prepare", str(tx), "--out", str(tmp_path / "p"), "--format", "mind"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"morec: error: --format mind: {tx} is a file (the hm layout's transactions_train.csv: --format hm reads its "
        "folder); the mind format reads a folder of MIND: MIND*_train / MIND*_dev folders with behaviors.tsv and "
        "news.tsv: give that folder")
    assert main(["data", "prepare", str(tx), "--out", str(tmp_path / "q"), "--format", "hm", "--preset", "none"]) == 0
    assert f"[HM] reader: {tx} is the hm layout's transactions_train.csv: read its folder {hm}" in capsys.readouterr().out


def test_a_preset_outside_the_paper_says_so(tmp_path):
    import shutil
    from pathlib import Path

    raw = Path(shutil.copytree(Path(__file__).parent / "fixtures" / "movielens", tmp_path / "ml-100k"))
    with open(raw / "u.data", "a") as handle:  # user 196 rates all three films, at three times
        handle.write("196\t302\t5\t881251100\n")
    ds, log = prepared(raw, tmp_path / "p", preset="ml-100k", prepare_cfg={"min_user_interactions": 3})
    preset = ds.manifest["preset"]
    assert preset["label"] == "MovieLens-100K (preset after the paper), changed: min_user_interactions"
    assert preset["chosen"] == "--preset ml-100k" and ds.manifest["prepare"]["max_seq_len"] == 23
    assert preset["sources"]["max_seq_len"] == ("not in the paper: its rule for text datasets (section 3.1: 'For "
                                                "MIND, we select the latest 23 items for each user')")
    assert log[0].startswith("[preset] MovieLens-100K (preset after the paper) (--preset ml-100k): max_seq_len=23")

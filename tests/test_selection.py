"""Which epoch a run keeps and when it stops, judged from validation scores alone (no model, no data): the same
decisions the trainer takes between epochs, checked on hand-made score sequences."""
from morec.config import Config, from_dict
from morec.selection import (TrainState, capped, judge_nonfinite_loss, judge_unvalidated, judge_validated,
                             selection_users, validates)


def config(**train) -> Config:
    return from_dict(Config, {"data": "d", "train": {"epochs": 10, "patience": 3, **train}})


def run(cfg: Config, scores: list[float]) -> tuple[TrainState, list[str]]:
    """Judge one validated epoch per score, as the trainer does, until the run stops."""
    st, said = TrainState(), []
    for epoch, score in enumerate(scores):
        st.epoch = epoch + 1  # the trainer closes the epoch before judging it
        judge_validated(st, cfg, epoch, score, float(epoch), said.append)
        if st.finished:
            break
    return st, said


def test_the_best_epoch_is_kept_and_patience_stops_the_run():
    st, said = run(config(), [0.1, 0.3, 0.2, 0.25, 0.29, 0.5])
    assert (st.best_epoch, st.best_score, st.time_to_best) == (1, 0.3, 1.0)
    assert (st.stop_reason, st.epoch) == ("patience", 5)  # three epochs without a better score after epoch 1
    assert said == ["early stop: no better valid ndcg@10 for 3 epochs"]


def test_a_score_falling_under_the_ratio_of_its_best_collapses_the_run():
    st, said = run(config(collapse_ratio=0.5, collapse_epochs=2, patience=9), [0.4, 0.1, 0.1, 0.1])
    assert st.stop_reason == "collapsed" and st.best_epoch == 0 and st.epoch == 3
    assert said == [st.collapse] and "under 0.5 x its best (0.4, epoch 0) for 2 epochs" in st.collapse


def test_a_start_under_the_floor_is_not_a_collapse():
    st, _ = run(config(collapse_ratio=0.5, collapse_floor=0.01, patience=9), [0.001, 0.0001, 0.0001, 0.0001])
    assert st.stop_reason != "collapsed"


def test_the_epoch_cap_stops_a_run_still_improving_and_says_it_was_capped():
    cfg = config(epochs=3)
    st, _ = run(cfg, [0.1, 0.2, 0.3])
    for epoch in range(3):
        st.log.append({"epoch": epoch, "valid_ndcg@10": 0.1 * (epoch + 1)})
    assert st.stop_reason == "epochs" and capped(st, cfg)


def test_unvalidated_epochs_count_for_patience_only_after_a_best_exists():
    cfg, st = config(), TrainState(epoch=1)
    judge_unvalidated(st, cfg)
    assert st.bad_epochs == 0 and not st.finished
    st.best_score = 0.2
    judge_unvalidated(st, cfg)
    assert st.bad_epochs == 1
    st.epoch = 10
    judge_unvalidated(st, cfg)
    assert st.stop_reason == "epochs"


def test_a_nonfinite_loss_collapses_and_names_the_learning_rates():
    st, said = TrainState(), []
    judge_nonfinite_loss(st, config(lr=0.5), 4, float("nan"), said.append)
    assert st.stop_reason == "collapsed" and "epoch 4: the training loss is nan" in st.collapse
    assert "train.lr (now 0.5)" in said[0]


def test_validation_cadence_and_selection_users():
    cfg = from_dict(Config, {"data": "d", "train": {"epochs": 10}, "eval": {"valid_from": 4, "valid_every": 3}})
    assert [e for e in range(10) if validates(cfg, e)] == [4, 7, 9]  # the last epoch always
    assert selection_users(100, 0, 1) is None and selection_users(100, 100, 1) is None
    users = selection_users(100, 10, 1)
    assert len(set(users)) == 10 and list(users) == sorted(users) and (users == selection_users(100, 10, 1)).all()


def test_a_saved_state_from_another_version_loads_without_its_unknown_fields():
    st = TrainState.from_saved({"epoch": 3, "best_epoch": 2, "field_of_a_later_version": 1})
    assert (st.epoch, st.best_epoch) == (3, 2)

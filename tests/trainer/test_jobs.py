"""Job state from the training process's events (pure: no process, no broker)."""

from __future__ import annotations

from services.trainer.catalog import Plan
from services.trainer.jobs import Job, JobBook, new_job_id

PLAN = Plan("m", [{"session": "s1"}], {}, "logo", 2, "subject", {"s1": "ann"}, ["acc_x"])


def epoch(n: int, **where: object) -> dict[str, object]:
    return {"kind": "epoch", "epoch": n, "epochs": 10, "loss": 0.5, "accuracy": 0.9} | where


def test_phase_fold_epoch_and_the_time_left() -> None:
    job = Job("j1", PLAN, started_at=100.0)
    assert job.apply({"kind": "phase", "phase": "cv"}, 100.0)  # phase changed
    job.apply({"kind": "fold_start", "phase": "cv", "fold": 1, "folds": 2}, 100.0)
    assert job.eta(100.0) is None  # nothing done yet: no guess
    job.apply(epoch(5, phase="cv", fold=1), 110.0)
    # 5 of 30 epochs (2 folds + the final fit, 10 each) in 10 s: 50 s left
    assert job.eta(110.0) == 50.0
    job.apply({"kind": "fold_start", "phase": "cv", "fold": 2}, 120.0)
    view = job.progress(120.0, 1000.0)
    assert (view.fold, view.epoch, view.loss) == (2, None, None)  # fold 1's epoch is not fold 2's
    job.apply(epoch(10, phase="cv", fold=2), 140.0)
    assert job.eta(140.0) == 20.0  # 20 of 30 in 40 s
    assert not job.apply({"kind": "fold_end", "phase": "cv", "fold": 2, "accuracy": 1.0}, 140.0)
    assert job.apply({"kind": "phase", "phase": "fit"}, 141.0)
    assert job.progress(141.0, 1000.0).fold is None
    job.apply(epoch(5, phase="fit"), 150.0)
    assert job.eta(150.0) == 10.0  # 25 of 30 in 50 s: 5 more at 2 s
    job.apply({"kind": "epoch", "epoch": 6, "epochs": 10, "loss": None}, 151.0)  # a NaN loss
    assert job.loss is None
    job.finish("done", 160.0, result={"artifact": "x"})
    view = job.progress(170.0, 1000.0)
    assert view.state == "done" and view.elapsed == 60.0 and view.eta is None
    assert view.started_at == 1000.0 - 70.0


def test_fold_results_and_the_history_are_bounded() -> None:
    job = Job("j1", PLAN, started_at=0.0)
    for i in range(50):  # a misbehaving process cannot grow the job
        job.apply({"kind": "fold_end", "fold": i, "accuracy": 1.0}, 0.0)
    assert len(job.fold_results) == PLAN.folds
    book = JobBook(max_history=3)
    for i in range(10):
        book.start(Job(f"j{i}", PLAN, 0.0))
        book.end()
    assert [j.id for j in book.history] == ["j7", "j8", "j9"] and book.find("j1") is None
    assert new_job_id(0.0).startswith("j19700101T000000Z-")

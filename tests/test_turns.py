"""``handlers.Turns`` (one job at a time per region/app/environment), the ``Waiting`` error and the
``DowngradeWaiting`` log filter that shows a wait at INFO instead of ERROR."""

from __future__ import annotations

import logging
import threading

import kopf

from backendauth_operator.handlers import DowngradeWaiting, Turns, Waiting

KEY = ("eu-west-1", "app1", "dev")
OTHER_KEY = ("eu-west-1", "app1", "prod")


# ---- Turns ---------------------------------------------------------------------------------------


def test_acquire_returns_none_for_the_first_uid() -> None:
    assert Turns().acquire(KEY, "uid-a") is None


def test_acquire_returns_the_holder_for_another_uid() -> None:
    turns = Turns()
    turns.acquire(KEY, "uid-a")
    assert turns.acquire(KEY, "uid-b") == "uid-a"
    assert turns.acquire(KEY, "uid-c") == "uid-a"


def test_same_uid_reacquires() -> None:
    turns = Turns()
    assert turns.acquire(KEY, "uid-a") is None
    assert turns.acquire(KEY, "uid-a") is None


def test_keys_are_independent() -> None:
    turns = Turns()
    assert turns.acquire(KEY, "uid-a") is None
    assert turns.acquire(OTHER_KEY, "uid-b") is None
    assert turns.acquire(("us-east-1", "app1", "dev"), "uid-c") is None
    assert turns.acquire(OTHER_KEY, "uid-a") == "uid-b"


def test_release_frees_every_key_of_the_uid() -> None:
    turns = Turns()
    turns.acquire(KEY, "uid-a")
    turns.acquire(OTHER_KEY, "uid-a")
    turns.release("uid-a")
    assert turns.acquire(KEY, "uid-b") is None
    assert turns.acquire(OTHER_KEY, "uid-c") is None


def test_release_leaves_other_uids_turns() -> None:
    turns = Turns()
    turns.acquire(KEY, "uid-a")
    turns.acquire(OTHER_KEY, "uid-b")
    turns.release("uid-a")
    assert turns.acquire(OTHER_KEY, "uid-c") == "uid-b"


def test_release_of_a_uid_holding_nothing_is_harmless() -> None:
    turns = Turns()
    turns.acquire(KEY, "uid-a")
    turns.release("uid-z")
    assert turns.acquire(KEY, "uid-b") == "uid-a"


def test_force_takes_over_a_held_turn() -> None:
    turns = Turns()
    turns.acquire(KEY, "uid-a")
    turns.force(KEY, "uid-b")
    assert turns.acquire(KEY, "uid-a") == "uid-b"
    assert turns.acquire(KEY, "uid-b") is None


def test_force_on_a_free_key_takes_it() -> None:
    turns = Turns()
    turns.force(KEY, "uid-b")
    assert turns.acquire(KEY, "uid-a") == "uid-b"


def test_released_after_force_the_turn_is_free() -> None:
    turns = Turns()
    turns.acquire(KEY, "uid-a")
    turns.force(KEY, "uid-b")
    turns.release("uid-a")  # the old holder lets go of nothing it still holds
    assert turns.acquire(KEY, "uid-c") == "uid-b"
    turns.release("uid-b")
    assert turns.acquire(KEY, "uid-c") is None


def test_many_threads_acquiring_one_key_have_exactly_one_winner() -> None:
    for _ in range(20):
        turns = Turns()
        count = 32
        start = threading.Barrier(count)
        results: dict[str, str | None] = {}

        def contend(
            uid: str,
            turns: Turns = turns,
            start: threading.Barrier = start,
            results: dict[str, str | None] = results,
        ) -> None:
            start.wait(10)
            results[uid] = turns.acquire(KEY, uid)

        threads = [threading.Thread(target=contend, args=(f"uid-{i}",)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(results) == count
        winners = [uid for uid, holder in results.items() if holder is None]
        assert len(winners) == 1
        assert {holder for holder in results.values() if holder is not None} == set(winners)


# ---- Waiting -------------------------------------------------------------------------------------


def test_waiting_str_starts_with_waiting_prefix() -> None:
    error = Waiting("job X is RUNNING", delay=10)
    assert str(error).startswith("waiting: ")
    assert str(error) == "waiting: job X is RUNNING"


def test_waiting_is_a_temporary_error_with_its_delay() -> None:
    error = Waiting("job X is RUNNING", delay=7.5)
    assert isinstance(error, kopf.TemporaryError)
    assert error.delay == 7.5


# ---- DowngradeWaiting ----------------------------------------------------------------------------


def record(level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, msg, args or None, None)


def test_waiting_error_record_becomes_info() -> None:
    rec = record(logging.ERROR, "Handler 'reconcile' failed temporarily: waiting: job X is RUNNING")
    assert DowngradeWaiting().filter(rec) is True
    assert rec.levelno == logging.INFO
    assert rec.levelname == "INFO"
    assert rec.getMessage() == "Handler 'reconcile' is waiting: job X is RUNNING"
    assert "failed" not in rec.getMessage()


def test_waiting_record_with_format_args_is_rewritten() -> None:
    rec = record(
        logging.ERROR, "%s failed temporarily: %s", "Handler 'reconcile'", "waiting: job X is RUNNING"
    )
    DowngradeWaiting().filter(rec)
    assert rec.levelno == logging.INFO
    assert rec.getMessage() == "Handler 'reconcile' is waiting: job X is RUNNING"


def test_the_message_kopf_logs_for_a_real_waiting_is_downgraded() -> None:
    error = Waiting("another BackendAuth has the turn", delay=5)
    rec = record(logging.ERROR, f"Handler 'reconcile' failed temporarily: {str(error) or repr(error)}")
    DowngradeWaiting().filter(rec)
    assert rec.levelno == logging.INFO
    assert rec.getMessage() == "Handler 'reconcile' is waiting: another BackendAuth has the turn"


def test_other_error_records_are_untouched() -> None:
    texts = [
        "Handler 'reconcile' failed temporarily: Throttled: Rate exceeded; retrying in 7s",
        "Handler 'reconcile' failed permanently: InvalidSpec: spec.appId",
        "Handler 'reconcile' failed with an exception. Will retry.",
        "waiting: not after 'failed temporarily'",
    ]
    for text in texts:
        rec = record(logging.ERROR, text)
        assert DowngradeWaiting().filter(rec) is True
        assert (rec.levelno, rec.levelname, rec.msg) == (logging.ERROR, "ERROR", text)


def test_records_below_error_are_untouched() -> None:
    text = "Handler 'reconcile' failed temporarily: waiting: job X is RUNNING"
    for level in (logging.WARNING, logging.INFO, logging.DEBUG):
        rec = record(level, text)
        assert DowngradeWaiting().filter(rec) is True
        assert (rec.levelno, rec.msg) == (level, text)


def test_filter_on_a_logger_lets_handlers_see_info() -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("test_turns.downgrade")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    collect, downgrade = Collect(), DowngradeWaiting()
    logger.addHandler(collect)
    logger.addFilter(downgrade)
    try:
        logger.error("Handler 'reconcile' failed temporarily: waiting: job X is RUNNING")
        logger.error("Handler 'reconcile' failed temporarily: AccessDenied: nope")
    finally:
        logger.removeFilter(downgrade)
        logger.removeHandler(collect)
    assert [(r.levelname, r.getMessage()) for r in seen] == [
        ("INFO", "Handler 'reconcile' is waiting: job X is RUNNING"),
        ("ERROR", "Handler 'reconcile' failed temporarily: AccessDenied: nope"),
    ]

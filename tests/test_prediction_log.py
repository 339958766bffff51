"""The prediction log on disk: a restarted server adds to it, and it stays under its size."""

from __future__ import annotations

import time

from experiments.serving.prediction_log import PredictionLog, answer_rows, read_log


def answers(n: int, version: str) -> list[dict]:
    rows = [{"emotion": "sad", "confidence": 0.6, "probabilities": {"sad": 0.6, "calm": 0.4},
             "error": None, "model_version": version} for _ in range(n)]  # fmt: skip
    return answer_rows(rows, [None] * n, [{"mfcc_00_mean": 1.0}] * n, model_name="m", request_ms=3)


def test_a_restarted_server_adds_to_the_log_it_left(tmp_path):
    first = PredictionLog(tmp_path)
    first.append(answers(3, "1"))
    first.flush()
    again = PredictionLog(tmp_path)  # the same folder after a restart
    again.append(answers(2, "2"))
    again.flush()
    logged = read_log(tmp_path)
    assert logged["model_version"].tolist() == ["1", "1", "1", "2", "2"]
    assert logged["time"].is_monotonic_increasing


def test_the_oldest_files_go_when_the_log_outgrows_its_limit(tmp_path):
    log = PredictionLog(tmp_path, max_mb=0.02)  # about 20 kB: a few files of 200 rows
    for batch in range(12):
        log.append(answers(200, str(batch)))
        log.flush()
        time.sleep(0.01)  # distinct modification times: oldest first is well defined
    files = list(tmp_path.glob("predictions-*.parquet"))
    assert sum(f.stat().st_size for f in files) <= 0.02 * 2**20
    assert 1 <= len(files) < 12
    kept = read_log(tmp_path)["model_version"].unique().tolist()
    assert kept == [str(b) for b in range(12 - len(files), 12)]  # the newest stay

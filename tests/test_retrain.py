"""Scheduled retraining: incremental re-runs, the champion guard, the lock, the schedule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from experiments.tracking.registry import CHAMPION
from flows.retrain import RetrainBusyError, retrain_flow, store_lock
from ser_features.demo_corpus import generate_demo_corpus

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain")
    data = root / "demo"
    generate_demo_corpus(data, n_speakers=3)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = {
        "name": "retrain-test",
        "data": {"folders": [str(data)], "features_dir": str(root / "features")},
        "protocol": {"test_speakers": ["synthetic_demo_03"]},
        "trainers": {"sklearn_mlp": {"param_grid": {"hidden_layer_sizes": [[32]]}, "cv_folds": 2}},
        "tracking": {"experiment": "retrain-tests"},
        "registry": {"model_name": "ser-retrain-test"},
    }
    path = root / "retrain.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.chdir(root)
    yield {"config": str(path), "uri": uri, "root": root}
    mp.undo()


def champion(name: str = "ser-retrain-test") -> str:
    return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)


def test_retraining_twice_extracts_nothing_new_and_guards_the_champion(setup):
    from prefect.client.orchestration import get_client

    first = retrain_flow(config_path=setup["config"])
    assert first.extracted == 90
    assert first.decision.promoted and champion() == first.decision.version

    second = retrain_flow(config_path=setup["config"])
    assert second.extracted == 0
    assert second.training.extraction.cached == 90
    better = second.decision.challenger_score > second.decision.champion_score
    assert second.decision.promoted == better
    assert champion() == (second.decision.version if better else first.decision.version)

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    summaries = [a for a in artifacts if a.key == "retrain-summary"]
    assert len(summaries) >= 2
    assert any(second.training.parent_run_id in str(a.data) for a in summaries)
    assert all("Decision" in str(a.data) for a in summaries)


def test_a_second_retrain_on_the_same_store_does_nothing(setup):
    before = champion()
    with store_lock(setup["uri"]), pytest.raises(RetrainBusyError, match="another retrain"):
        retrain_flow(config_path=setup["config"])
    assert champion() == before


def test_the_deployment_carries_the_schedule_and_a_runner_completes_a_run(setup):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.runner import Runner

    deployment = retrain_flow.to_deployment(
        name="retrain-test", cron="0 3 * * 1", parameters={"config_path": setup["config"]}
    )
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * 1"]
    runner = Runner(name="retrain-test-runner", query_seconds=1)
    runner.add_deployment(deployment)
    flow_run = run_deployment(name="retrain/retrain-test", timeout=0)
    asyncio.run(runner.start(run_once=True))
    with get_client(sync_client=True) as client:
        finished = client.read_flow_run(flow_run.id)
        stored = client.read_deployment_by_name("retrain/retrain-test")
    assert finished.state.is_completed(), finished.state
    assert [s.schedule.cron for s in stored.schedules] == ["0 3 * * 1"]


def test_prefect_yaml_declares_the_same_deployment_for_a_work_pool():
    spec = yaml.safe_load((PROJECT / "prefect.yaml").read_text())
    (deployment,) = [d for d in spec["deployments"] if d["name"] == "ser-retrain"]
    module, function = deployment["entrypoint"].split(":")
    assert (PROJECT / module).is_file() and function == retrain_flow.fn.__name__
    assert deployment["work_pool"]["name"]
    assert [s["cron"] for s in deployment["schedules"]] == ["0 3 * * 1"]
    assert (PROJECT / deployment["parameters"]["config_path"]).is_file()

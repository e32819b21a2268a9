"""The TypeScript and Ruby clients end to end: each enqueues a job for a Python, a Ruby and a
TypeScript worker on a real `simbi-workers start`, and all six come back done with the
text they were sent, emoji, right-to-left script and combining marks intact."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from simbi_workers import catalog, client_catalog, keys
from tests.conftest import free_port
from tests.harness import ROOT, status, supervisor, wait_for

TEXT = "héllo 👋 مرحبا שלום e\u0301 ñ 👩\u200d👩\u200d👧 🇫🇷"
WORKERS = ["PyEchoWorker", "RbEchoWorker", "JsEchoWorker"]
TS_CLIENT = ROOT / "clients" / "typescript" / "dist" / "src" / "index.js"

# Each script enqueues one echo job per worker with {"text", "from"} and prints the ids.
NODE_SCRIPT = """
const client = require(process.argv[1]);
(async () => {
  const [text, workers] = [process.argv[2], JSON.parse(process.argv[3])];
  const ids = [];
  for (const worker of workers) ids.push(await client.performAsync(worker, { text, from: 'node' }));
  console.log(JSON.stringify(ids));
  await client.closeDefaultClient();
})();
"""
RUBY_SCRIPT = """
require "json"
require "simbi_workers"
text, workers = ARGV[0], JSON.parse(ARGV[1])
ids = workers.map { |w| SimbiWorkers.perform_async(w, { "text" => text, "from" => "ruby" }) }
puts JSON.generate(ids)
"""


@pytest.fixture
def client_env(worker_env, test_catalog_path, tmp_path):
    """The worker environment, with a client catalogue that knows the test workers."""
    path = client_catalog.write_json(catalog.load(test_catalog_path), tmp_path / "catalog.json")
    return {**worker_env, "SIMBI_CLIENT_CATALOG": str(path)}


def enqueue_from(command: list[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_node_and_ruby_clients_reach_workers_in_all_three_runtimes(client_env, redis_conn):
    workers = json.dumps(WORKERS)
    with supervisor(client_env, free_port(), "--processes", "1"):
        node_ids = enqueue_from(
            ["node", "-e", NODE_SCRIPT, str(TS_CLIENT), TEXT, workers], client_env
        )
        ruby_lib = str(ROOT / "clients" / "ruby" / "lib")
        ruby_ids = enqueue_from(
            ["ruby", "-I", ruby_lib, "-e", RUBY_SCRIPT, TEXT, workers], client_env
        )

        jobs = {job_id: "node" for job_id in node_ids} | {job_id: "ruby" for job_id in ruby_ids}
        assert len(jobs) == 6
        wait_for(lambda: all(status(redis_conn, job_id) == "finished" for job_id in jobs), 60)

    for job_id, sender in jobs.items():
        fields = redis_conn.hgetall(keys.job(job_id))
        result = json.loads(fields[b"result"].decode("utf-8"))
        assert result == {"text": TEXT, "from": sender}, fields[b"simbi_worker"]
        assert result["text"].encode("utf-8") == TEXT.encode("utf-8")
    workers_run = sorted(redis_conn.hget(keys.job(job_id), "simbi_worker") for job_id in jobs)
    assert workers_run == sorted(w.encode() for w in WORKERS * 2)


def run_example(command: list[str], env: dict[str, str]) -> tuple[dict[str, str], str]:
    """The example's printed ids and its refusal line."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    ids_text, _, refusal = done.stdout.rpartition("refused: ")
    return json.loads(ids_text), refusal.strip()


def test_the_node_and_ruby_examples_enqueue_what_they_say(redis_url, redis_conn, tmp_path):
    # The Node example resolves the client as an app that ran `npm install <path>` would.
    modules = tmp_path / "node_modules"
    modules.mkdir()
    (modules / "simbi-workers-client").symlink_to(ROOT / "clients" / "typescript")
    env = {**os.environ, "REDIS_URL": redis_url, "NODE_PATH": str(modules)}
    env.pop("SIMBI_CLIENT_CATALOG", None)

    node_ids, node_refusal = run_example(["node", "examples/node/enqueue.js"], env)
    ruby_lib = str(ROOT / "clients" / "ruby" / "lib")
    ruby_ids, ruby_refusal = run_example(["ruby", "-I", ruby_lib, "examples/ruby/enqueue.rb"], env)

    for ids in (node_ids, ruby_ids):
        workers = {
            name: redis_conn.hget(keys.job(job_id), "simbi_worker") for name, job_id in ids.items()
        }
        assert workers == {
            "slack": b"SlackNotifierWorker",
            "tracked": b"MixpanelTrackWorker",
            "event": b"UserEventTrackerWorker",
            "later": b"SlackNotifierWorker",
        }
    assert node_refusal.startswith("unknown worker 'SlackNotifierWorkr' (did you mean")
    assert ruby_refusal == "args[2] has the key :plan: JSON object keys are strings"

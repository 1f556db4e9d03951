"""Benchmarks, each a ratio against a baseline measured in the same run.

So far: the fast-mode drain of N fresh events against fastembed alone on the same
texts with the same batch size. The system is driven through its public
interfaces only: the `agentmem worker` command, Kafka topics and /metrics.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from loadgen.synth import SynthConfig, encode, synth_events
from streams.topics import partitions_of


@dataclass(frozen=True)
class BenchEnv:
    """Where the stack is and how to reach a private worker."""

    bootstrap: str
    metrics_port: int
    embedding_batch: int
    workdir: Path
    env: dict[str, str]


async def _publish(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        enable_idempotence=True,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topic, v, key=k) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return started


async def _count_acks(bootstrap: str, topic: str, want: int, timeout_s: float) -> float:
    """Wait until ``want`` acks are on the topic; return the perf_counter time of the last."""
    deadline = time.perf_counter() + timeout_s
    partitions: list[int] = []
    while not partitions and time.perf_counter() < deadline:
        partitions = await partitions_of(bootstrap, topic)
        await asyncio.sleep(0.2)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    seen, last = 0, time.perf_counter()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while seen < want:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {seen} of {want} acks after {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            got = sum(len(m) for m in batch.values())
            if got:
                seen += got
                last = time.perf_counter()
    finally:
        await consumer.stop()
    return last


def _wait_metrics(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the worker exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError("the worker did not start")


def embed_rate(texts: list[str], batch: int, model_dir: Path) -> float:
    """fastembed alone on the texts, in this process (the baseline): the same model
    pack and batch size as the worker, called directly, without our code around it."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = "bench/all-MiniLM-L6-v2-int8"
    if name not in {m["model"] for m in TextEmbedding.list_supported_models()}:
        TextEmbedding.add_custom_model(
            model=name,
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf="sentence-transformers/all-MiniLM-L6-v2"),
            dim=384,
            model_file="model.onnx",
        )
    model = TextEmbedding(name, specific_model_path=str(model_dir))
    list(model.embed(texts[:batch], batch_size=batch))  # warm-up
    started = time.perf_counter()
    list(model.embed(texts, batch_size=batch))
    return len(texts) / (time.perf_counter() - started)


def fast_drain(bench: BenchEnv, records: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """Start a private worker, publish the records, time until every ack is out."""
    tag = uuid.uuid4().hex[:8]
    prefix = f"bench.{tag}."
    env = {
        **bench.env,
        "AGENTMEM_TOPIC_PREFIX": prefix,
        "AGENTMEM_WORKER_ID": f"bench-{tag}",
        "AGENTMEM_WEAVIATE_COLLECTION": f"Bench{tag}",
        "AGENTMEM_WORKER_METRICS_PORT": str(bench.metrics_port),
        "AGENTMEM_STACK_DIR": str(bench.workdir / tag),
    }
    log = (bench.workdir / f"worker-{tag}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_metrics(bench.metrics_port, proc)

        async def run() -> tuple[float, float]:
            started = await _publish(bench.bootstrap, f"{prefix}memory.events", records)
            last = await _count_acks(bench.bootstrap, f"{prefix}memory.indexed", len(records), 1800)
            return started, last

        started, last = asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    seconds = last - started
    return {"events": len(records), "seconds": seconds, "events_per_s": len(records) / seconds}


def fast_vs_embed(bench: BenchEnv, count: int, model_dir: Path, seed: int = 7) -> dict[str, Any]:
    docs = list(
        synth_events(
            SynthConfig(count=count, tenants=50, seed=seed, update_ratio=0.0, delete_ratio=0.0)
        )
    )
    texts = [str(d["content"]) for d in docs]
    baseline = embed_rate(texts, bench.embedding_batch, model_dir)
    drain = fast_drain(bench, [encode(d) for d in docs])
    return {
        "fast_drain_events_per_s": drain["events_per_s"],
        "embed_alone_per_s": baseline,
        "fast_vs_embed_ratio": drain["events_per_s"] / baseline,
        "events": count,
        "batch": bench.embedding_batch,
    }


def bench_env_from_environment(workdir: Path) -> BenchEnv:
    env = dict(os.environ)
    return BenchEnv(
        bootstrap=env.get("AGENTMEM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        metrics_port=int(env.get("LOADGEN_BENCH_METRICS_PORT", "9118")),
        embedding_batch=int(env.get("AGENTMEM_MAX_BATCH", "256")),
        workdir=workdir,
        env=env,
    )


def write_results(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n")

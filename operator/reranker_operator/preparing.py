"""What a preparation Job and its pods say, in the words of the ModelReady condition: pure, no I/O.

`reranker-server prepare` writes one line to its termination message: the result as JSON when it
succeeded, `Reason: message` when it failed for a reason it knows. What it cannot write (an OOM
kill, a deadline, an image that cannot be pulled) comes from the Job's and the pod's own status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

Phase = Literal["Preparing", "Prepared", "PreparationFailed"]
#: What to change, by the failure reasons `reranker-server prepare` reports (and the kubelet's).
ADVICE: Final = {
    "RepositoryNotFound": "check model.id (and set HF_TOKEN through spec.env if the repository is private)",
    "Unauthorized": "accept the model's licence on the hub and pass HF_TOKEN through spec.env",
    "RevisionNotFound": "check model.revision",
    "NoNetworkNothingCached": "let the preparation reach the Hugging Face hub, or pre-fill the cache claim",
    "UnsupportedArchitecture": "choose an encoder cross-encoder (BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA)",
    "VolumeFull": "give the cache claim more space (model.cache.sizeMebibytes)",
    "IntegrityCheckFailed": "the prepared graph does not score like the checkpoint: try quantization none",
    "OutOfMemory": "raise prepare.resources.limits.memory",
    "DeadlineExceeded": "raise prepare.activeDeadlineSeconds",
}


@dataclass(frozen=True)
class PreparationState:
    phase: Phase
    reason: str
    message: str
    result: Mapping[str, Any] | None = None


def observe_job(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> PreparationState:
    if job is None:
        return PreparationState("Preparing", "JobCreated", "creating the preparation Job")
    name = job["metadata"]["name"]
    status = job.get("status") or {}
    terminated = [state for state in map(_terminated, pods) if state is not None]
    if status.get("succeeded"):
        for state in terminated:
            if state.get("exitCode") == 0 and (result := _result(state.get("message") or "")):
                return PreparationState("Prepared", "Prepared", f"Job {name} prepared the model", result)
        return PreparationState("Prepared", "Prepared", f"Job {name} prepared the model")
    failed_condition = next(
        (
            c
            for c in status.get("conditions") or ()
            if c.get("type") == "Failed" and c.get("status") == "True"
        ),
        None,
    )
    last_failure = _failure(terminated[-1]) if terminated else None
    if failed_condition is not None:
        if failed_condition.get("reason") == "DeadlineExceeded":
            last_failure = ("DeadlineExceeded", f"Job {name} ran past prepare.activeDeadlineSeconds")
        reason, detail = last_failure or (
            failed_condition.get("reason") or "JobFailed",
            failed_condition.get("message") or f"Job {name} failed; read `kubectl logs job/{name}`",
        )
        return PreparationState("PreparationFailed", reason, _advised(reason, detail))
    message = f"Job {name} prepares the model"
    if last_failure is not None:
        message += f"; its last attempt failed ({last_failure[0]}: {last_failure[1]}) and it retries"
    return PreparationState("Preparing", "JobRunning", message)


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or ():
        state = (container.get("state") or {}).get("terminated")
        if state is not None:
            return state
    return None


def _result(message: str) -> Mapping[str, Any] | None:
    try:
        parsed = json.loads(message.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return parsed if isinstance(parsed, dict) and "digest" in parsed else None


def _failure(state: Mapping[str, Any]) -> tuple[str, str] | None:
    if state.get("exitCode") == 0:
        return None
    if state.get("reason") == "OOMKilled":
        return "OutOfMemory", "the preparation was killed for using more memory than its limit"
    line = (state.get("message") or "").strip().splitlines()[-1:] or [""]
    reason, separator, detail = line[0].partition(": ")
    if separator and reason.isalnum() and reason[:1].isupper():
        return reason, detail
    return "PreparationFailed", line[0] or f"exit code {state.get('exitCode')}"


def _advised(reason: str, detail: str) -> str:
    advice = ADVICE.get(reason)
    return f"{detail}: {advice}" if advice else detail

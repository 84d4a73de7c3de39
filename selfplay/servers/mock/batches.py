"""The mock server's Files and Batch APIs: `/v1/files` and `/v1/batches`, deterministic and offline.

What it is for: running batch-mode jobs without a provider. `POST /v1/files` (multipart: `file`, `purpose`)
stores a JSONL file; `POST /v1/batches` (`input_file_id`, `endpoint`, `completion_window`) creates a
batch that is `in_progress` for `batch_latency_s` seconds after creation and then, on the next
`GET /v1/batches/{id}`, is processed in one go: every line is answered like an online request (same
script, same usage, same per-request fault draws: a fault becomes that line's error in the error file,
with the HTTP status the online fault has) and the batch ends `completed`. `batch_outcome = "expired"`
answers only the first half of the lines, rounded up (the rest are `batch_expired` errors); `"failed"` rejects the
input file (status `failed`, `errors.data`, no output). `GET /v1/files/{id}/content` returns a file.
Stats: `batches` (created), `batch_lines` (answered), billed usage in the same `usage` counters.
Input lines: `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`; output lines:
`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`.
What it does not do: cancel batches, list files, or run lines concurrently with anything (one pass).
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from selfplay.servers.mock.requests import BadRequest, chat_params, request_key

_STATUS_OF_FAULT = {"429": 429, "500": 500, "timeout": 504, "malformed": 500, "truncate": 500}


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The parts of a multipart/form-data body by field name (enough for the SDK's file uploads)."""
    marker = "boundary="
    if marker not in content_type:
        raise ValueError("multipart body without a boundary")
    boundary = content_type.split(marker, 1)[1].split(";")[0].strip().strip('"').encode()
    parts: dict[str, bytes] = {}
    for chunk in body.split(b"--" + boundary):
        chunk = chunk.strip(b"\r\n")
        if not chunk or chunk == b"--" or b"\r\n\r\n" not in chunk:
            continue
        head, content = chunk.split(b"\r\n\r\n", 1)
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition") and 'name="' in line:
                parts[line.split('name="', 1)[1].split('"', 1)[0]] = content
    return parts


class BatchState:
    """Files and batches of one mock server (in memory)."""

    def __init__(self, mock: Any) -> None:
        self.mock = mock  # the MockState: its config, stats, fault planner and completion builder
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.created = 0
        self.lines = 0

    def add_file(self, content: bytes, purpose: str, filename: str = "input.jsonl") -> dict[str, Any]:
        file_id = f"file-{len(self.files):06d}"
        meta = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}
        self.files[file_id] = {"meta": meta, "content": content}
        return meta

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.created += 1
        batch_id = f"batch_{len(self.batches):06d}"
        now = time.time()
        batch = {"id": batch_id, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
                 "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window"),
                 "status": "in_progress", "output_file_id": None, "error_file_id": None,
                 "created_at": int(now), "in_progress_at": int(now), "expires_at": int(now) + 86400,
                 "completed_at": None, "failed_at": None, "expired_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata"),
                 "_ready": now + self.mock.config.batch_latency_s}
        self.batches[batch_id] = batch
        return batch

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        if batch["status"] == "in_progress" and time.time() >= batch["_ready"]:
            self._process(batch)
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _process(self, batch: dict[str, Any]) -> None:
        outcome = self.mock.config.batch_outcome
        lines = self.files[batch["input_file_id"]]["content"].decode().splitlines()
        lines = [json.loads(line) for line in lines if line.strip()]
        now = int(time.time())
        batch["request_counts"]["total"] = len(lines)
        if outcome == "failed":
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": [
                {"code": "invalid_request", "message": "mock: batch rejected (batch_outcome = failed)",
                 "param": None, "line": 1}]})
            return
        answered = len(lines) if outcome != "expired" else (len(lines) + 1) // 2
        out, err = [], []
        for number, line in enumerate(lines):
            custom_id = line.get("custom_id")
            if number >= answered:
                err.append(_line(custom_id, None, {"code": "batch_expired", "message": "mock: batch expired"}))
                continue
            body = line.get("body") or {}
            key = request_key("chat.completions", body)
            fault = self.mock.planner.decide(key)
            if fault is not None:
                self.mock.stats.fault(fault.kind)
                status = _STATUS_OF_FAULT[fault.kind]
                err.append(_line(custom_id, {"status_code": status, "request_id": f"req_{key}", "body": {
                    "error": {"message": f"mock: injected {fault.kind}", "type": "server_error"}}}, None))
                continue
            try:
                payload, rules, choices, usage = self.mock._completion("chat.completions", chat_params(body), key)
            except BadRequest as exc:
                err.append(_line(custom_id, {"status_code": exc.status, "request_id": f"req_{key}", "body": {
                    "error": {"message": exc.message, "type": "invalid_request_error"}}}, None))
                continue
            self.mock.stats.success(key, rules, choices, usage["prompt_tokens"], usage["completion_tokens"])
            self.lines += 1
            out.append(_line(custom_id, {"status_code": 200, "request_id": f"req_{key}", "body": payload}, None))
        counts = batch["request_counts"]
        counts.update(completed=len(out), failed=len(err))
        if out:
            batch["output_file_id"] = self.add_file(_jsonl(out), "batch_output", "output.jsonl")["id"]
        if err:
            batch["error_file_id"] = self.add_file(_jsonl(err), "batch_output", "errors.jsonl")["id"]
        if outcome == "expired":
            batch.update(status="expired", expired_at=now)
        else:
            batch.update(status="completed", completed_at=now)


def _line(custom_id: Any, response: Any, error: Any) -> dict[str, Any]:
    return {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "response": response, "error": error}


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()


def add_batch_routes(app: FastAPI, mock: Any, json_response: Any, error_response: Any) -> BatchState:
    state = BatchState(mock)

    @app.post("/v1/files")
    async def upload(request: Request) -> Response:
        mock.stats.request("files")
        try:
            parts = parse_multipart(request.headers.get("content-type", ""), await request.body())
        except ValueError as exc:
            return error_response(400, f"mock: {exc}", "invalid_request_error")
        if "file" not in parts:
            return error_response(400, "mock: a `file` part is required", "invalid_request_error")
        return json_response(state.add_file(parts["file"], parts.get("purpose", b"batch").decode()))

    @app.get("/v1/files/{file_id}/content")
    async def content(file_id: str) -> Response:
        mock.stats.request("files.content")
        if file_id not in state.files:
            return error_response(404, f"mock: no file {file_id}", "invalid_request_error")
        return Response(content=state.files[file_id]["content"], media_type="application/octet-stream")

    @app.post("/v1/batches")
    async def create(request: Request) -> Response:
        mock.stats.request("batches.create")
        body = json.loads(await request.body() or b"{}")
        if body.get("input_file_id") not in state.files:
            return error_response(400, "mock: unknown input_file_id", "invalid_request_error")
        if body.get("completion_window") != "24h":
            return error_response(400, "mock: completion_window must be \"24h\"", "invalid_request_error")
        return json_response(state.retrieve(state.create(body)["id"]))

    @app.get("/v1/batches/{batch_id}")
    async def retrieve(batch_id: str) -> Response:
        mock.stats.request("batches.retrieve")
        if batch_id not in state.batches:
            return error_response(404, f"mock: no batch {batch_id}", "invalid_request_error")
        return json_response(state.retrieve(batch_id))

    return state

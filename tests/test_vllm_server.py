"""Switching what a vLLM server serves between rounds, against a small FAKE of vLLM's HTTP endpoints.

The fake below (FastAPI on 127.0.0.1) answers `/v1/load_lora_adapter`, `/v1/unload_lora_adapter`, `/v1/models`
and `/health` the way vLLM documents them (200 on success, 400 with an error for a duplicate name or a missing
path, 404 for the LoRA routes when runtime updating is off). It is not vLLM.
"""

import asyncio
import os
import sys
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from agents.llm.vllm_server import (ServedModelSwitcher, VLLMServerError, load_lora_adapter, restart_server,
                                    served_models, server_root, unload_lora_adapter, wait_healthy)
from selfplay.servers.serve.server import bind


def fake_vllm_server(runtime_lora: bool = True) -> FastAPI:
    app = FastAPI()
    app.state.adapters = {}

    @app.get("/health")
    async def health():
        return PlainTextResponse("")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "base"}] + [{"id": n} for n in app.state.adapters]}

    if runtime_lora:
        @app.post("/v1/load_lora_adapter")
        async def load(body: dict):
            name, path = body.get("lora_name"), body.get("lora_path")
            if name in app.state.adapters and not body.get("load_inplace"):
                return JSONResponse({"error": f"The lora adapter '{name}' has already been loaded."}, 400)
            if not path or not os.path.isdir(path):
                return JSONResponse({"error": f"No adapter found for {path}"}, 400)
            app.state.adapters[name] = path
            return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

        @app.post("/v1/unload_lora_adapter")
        async def unload(body: dict):
            if app.state.adapters.pop(body.get("lora_name"), None) is None:
                return JSONResponse({"error": "The lora adapter was not found."}, 400)
            return PlainTextResponse("Success")

    return app


class Running:
    def __init__(self, app):
        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def test_server_root_accepts_openai_base_urls():
    assert server_root("http://h:8000/v1") == server_root("http://h:8000/v1/") == "http://h:8000"


def test_load_and_unload_adapters_and_switch_round_after_round(tmp_path):
    (tmp_path / "r1").mkdir(), (tmp_path / "r2").mkdir()
    app = fake_vllm_server()
    with Running(app) as server:
        base_url = server.url + "/v1"
        load_lora_adapter(base_url, "manual", str(tmp_path / "r1"))
        assert served_models(base_url) == ["base", "manual"]
        with pytest.raises(VLLMServerError, match="already been loaded"):
            load_lora_adapter(base_url, "manual", str(tmp_path / "r1"))
        with pytest.raises(VLLMServerError, match="No adapter found"):
            load_lora_adapter(base_url, "other", str(tmp_path / "missing"))
        unload_lora_adapter(base_url, "manual")

        switcher = ServedModelSwitcher(base_url, prefix="policy")
        assert switcher.switch(1, str(tmp_path / "r1")) == "policy-1"
        assert switcher.switch(2, str(tmp_path / "r2")) == "policy-2"
        assert served_models(base_url) == ["base", "policy-2"]  # the previous round's adapter was unloaded
        assert app.state.adapters["policy-2"] == str(tmp_path / "r2")


def test_lora_routes_missing_means_runtime_updating_is_off(tmp_path):
    with Running(fake_vllm_server(runtime_lora=False)) as server:
        with pytest.raises(VLLMServerError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING"):
            load_lora_adapter(server.url, "x", str(tmp_path))


def test_restart_command_then_wait_for_health(tmp_path):
    marker = tmp_path / "restarted"
    with Running(fake_vllm_server()) as server:
        command = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('yes')"]
        restart_server(command, server.url + "/health", timeout_s=10, poll_s=0.05)
        assert marker.read_text() == "yes"
        switcher = ServedModelSwitcher(server.url, mode="restart", served_name="policy",
                                       restart_command=f"{sys.executable} -c pass {{path}}")
        assert switcher.switch(3, str(tmp_path)) == "policy"
        with pytest.raises(VLLMServerError, match="exited 3"):
            restart_server([sys.executable, "-c", "import sys; sys.exit(3)"], server.url + "/health")
    with pytest.raises(VLLMServerError, match="not healthy"):
        wait_healthy(server.url + "/health", timeout_s=0.3, poll_s=0.05)  # the server is gone now

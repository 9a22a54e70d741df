"""The LLM servers: each bot's server answers and lists the bot's model, whatever its kind."""

from __future__ import annotations

from django.conf import settings

from bots.llm import ModelNotFound, probe_llm
from bots.models import Backend, Bot
from deia.probes import ProbeResult
from ops.diagnose.grading import Check, Level, ok

DOWN_STEP = {
    Backend.OLLAMA: "runbooks/deia-llm-backend-down.md: systemctl status ollama; curl $OLLAMA_URL/api/tags",
    Backend.OPENAI: "runbooks/deia-llm-backend-down.md: curl $OPENAI_URL/models (with the API key)",
}
MISSING_STEP = {
    Backend.OLLAMA: "ollama pull <model> on the LLM host",
    Backend.OPENAI: "load <model> on the OpenAI-compatible server (or fix the bot's model name)",
}


def check_llm() -> Check:
    """One probe per (backend, model) in use; a server that is down is asked no more."""
    bots = list(Bot.objects.exclude(backend=Backend.ECHO).order_by("slug").only("slug", "backend", "model_name"))
    if not bots:
        return ok("llm", "no bot uses an LLM server")
    probed: dict[tuple[str, str], ProbeResult] = {}
    down: dict[str, ProbeResult] = {}
    missing: dict[str, list[str]] = {}
    for bot in bots:
        if bot.backend in down:
            continue
        key = (bot.backend, bot.model_name)
        if key not in probed:
            probed[key] = probe_llm(bot, timeout=settings.DIAGNOSE_TIMEOUT, retries=0)
        result = probed[key]
        if isinstance(result.error, ModelNotFound):
            missing.setdefault(bot.backend, []).append(f"{bot.slug}: {bot.model_name}")
        elif not result.ok:
            down[bot.backend] = result
    if down:
        return Check(
            "llm",
            Level.CRIT,
            "; ".join(result.detail for result in down.values()),
            "every bot's LLM server answers its model list",
            "; ".join(DOWN_STEP[backend] for backend in down),
        )
    if missing:
        names = [name for backend in missing for name in missing[backend]]
        return Check(
            "llm",
            Level.WARN,
            f"models missing for {len(names)} bots ({'; '.join(names[:5])})",
            "every bot's model present",
            "; ".join(MISSING_STEP[backend] for backend in missing),
        )
    kinds = ", ".join(sorted({bot.backend for bot in bots}))
    return ok("llm", f"reachable, {len(bots)} bots' models present ({kinds})")

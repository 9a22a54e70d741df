"""The bot runner: one OS process per bot serving /health, /chat and /metrics.

Kept import-light: the web app imports `bots.runner.client` to relay chats, and must not
pull in uvicorn or the runner's process machinery for that.
"""

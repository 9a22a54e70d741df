from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework.routers import SimpleRouter

from bots import api, chat_api

router = SimpleRouter(trailing_slash=False)
router.register("api/bots", api.BotViewSet, basename="bot")

urlpatterns = [
    # Async: a chat waiting on its bot holds no worker (bots.chat_api).
    path("api/bots/<int:pk>/messages", chat_api.BotMessagesView.as_view(), name="bot-messages"),
    *router.urls,
    # The operations guide's spelling: POST /api/bot/<id>/stop.
    path("api/bot/<int:pk>/stop", api.BotViewSet.as_view({"post": "stop"}), name="bot-stop-guide"),
    path("api/schema", SpectacularJSONAPIView.as_view(), name="api-schema"),
]

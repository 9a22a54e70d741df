"""TRUSTED_PROXIES: forwarded headers count only from a trusted peer, right-most untrusted hop wins."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import RequestFactory
from django.urls import reverse

from deia.models import AuditLog
from deia.proxies import client_ip

OUTSIDE = "203.0.113.9"
NGINX = "127.0.0.1"
LOAD_BALANCER = "10.0.0.2"


@pytest.fixture
def behind_proxies(settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


def ip_of(remote_addr: str, forwarded_for: str | None = None) -> str | None:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote_addr, **extra))


def test_without_trusted_proxies_the_peer_is_the_client(settings):
    settings.TRUSTED_PROXIES = []
    assert ip_of(NGINX, OUTSIDE) == NGINX


def test_a_forged_header_from_an_untrusted_peer_is_ignored(behind_proxies):
    assert ip_of(OUTSIDE, "127.0.0.1") == OUTSIDE


def test_behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client(behind_proxies):
    # The client forged the first hop; the load balancer saw OUTSIDE, nginx saw the balancer.
    assert ip_of(NGINX, f"127.0.0.1, {OUTSIDE}, {LOAD_BALANCER}") == OUTSIDE
    assert ip_of(NGINX, OUTSIDE) == OUTSIDE


def test_when_every_hop_is_trusted_the_furthest_one_is_the_client(behind_proxies):
    assert ip_of(NGINX, f"{LOAD_BALANCER}, 127.0.0.1") == LOAD_BALANCER
    assert ip_of(NGINX) == NGINX


def test_garbage_where_an_address_should_be_stops_at_the_last_trusted_hop(behind_proxies):
    assert ip_of(NGINX, f"{OUTSIDE}, not-an-ip, {LOAD_BALANCER}") == LOAD_BALANCER
    assert ip_of(NGINX, "é, ") == NGINX


def test_an_ipv4_mapped_peer_is_matched_as_ipv4(behind_proxies):
    assert ip_of("::ffff:127.0.0.1", OUTSIDE) == OUTSIDE
    assert ip_of("not-an-address", OUTSIDE) is None


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/metrics", "/api/prometheus/targets"])
def test_a_forged_loopback_from_an_untrusted_peer_does_not_open_metrics(client, behind_proxies, path):
    assert client.get(path, REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403
    via_nginx = client.get(path, REMOTE_ADDR=NGINX, HTTP_X_FORWARDED_FOR=f"127.0.0.1, {OUTSIDE}")
    assert via_nginx.status_code == 403
    assert client.get(path, REMOTE_ADDR=NGINX).status_code == 200  # Prometheus on the host


@pytest.mark.django_db
def test_the_audit_ip_follows_the_same_rule(client, behind_proxies):
    login = reverse("admin:login")
    client.post(login, {"username": "ops", "password": "x"}, REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="10.9.9.9")
    client.post(login, {"username": "ops", "password": "x"}, REMOTE_ADDR=NGINX, HTTP_X_FORWARDED_FOR="198.51.100.7")
    rows = AuditLog.objects.filter(action="auth.login_failed").order_by("id")
    assert [row.ip for row in rows] == [OUTSIDE, "198.51.100.7"]


@pytest.mark.django_db
def test_x_forwarded_proto_counts_only_from_a_trusted_peer(client, settings, behind_proxies):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    forged = client.get("/admin/login/", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_PROTO="https")
    assert forged.status_code == 301
    forged_host = client.get("/admin/login/", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_HOST="evil.example")
    assert forged_host["Location"].startswith("https://testserver/")
    proxied = client.get("/admin/login/", REMOTE_ADDR=NGINX, HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200

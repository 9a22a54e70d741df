"""Hosts for operators: the admin list and its actions (with permissions), `manage.py host`, /metrics, overview."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from bots.access import MANAGE_HOSTS
from bots.lifecycle import hosts
from bots.models import Bot, DesiredState, Host, Status, db_now
from deia.models import AuditLog
from tests.support.perms import grant
from tests.support.procs import PYTHON, ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet() -> dict[str, Host]:
    now = db_now()
    made = {
        "alive": Host.objects.create(name="alive", capacity=4, last_seen=now, labels="gpu", version="1.0.0+abc"),
        "draining": Host.objects.create(
            name="draining", capacity=4, last_seen=now, draining=True, draining_since=timezone.now()
        ),
        "lost": Host.objects.create(name="lost", capacity=4, last_seen=now - timedelta(minutes=5)),
    }
    Bot.objects.create(
        name="On alive", slug="on-alive", host="alive", status=Status.RUNNING, desired_state=DesiredState.RUNNING
    )
    return made


def post_action(client, action: str, names: list[str]):
    ids = [str(Host.objects.get(name=n).pk) for n in names]
    return client.post(reverse("admin:bots_host_changelist"), {"action": action, "_selected_action": ids})


def test_the_host_list_shows_state_bots_capacity_and_labels(admin_client, fleet, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        page = admin_client.get(reverse("admin:bots_host_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    for word in ("alive", "draining", "lost", "gpu", "1.0.0+abc", "Alive", "Draining", "Lost"):
        assert word in text
    detail = admin_client.get(reverse("admin:bots_host_change", args=[fleet["alive"].pk]))
    assert "On alive" in detail.content.decode()


def test_an_anonymous_visitor_is_sent_to_the_login_and_nothing_changes(client, fleet):
    response = post_action(client, "drain_hosts", ["alive"])
    assert response.status_code == 302 and "login" in response["Location"]
    assert not Host.objects.get(name="alive").draining


def test_a_user_without_manage_hosts_is_refused_and_nothing_changes(client, django_user_model, fleet):
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    grant(user, "bots.view_host")
    client.force_login(user)
    assert client.get(reverse("admin:bots_host_changelist")).status_code == 200
    assert post_action(client, "drain_hosts", ["alive"]).status_code == 403
    assert not Host.objects.get(name="alive").draining
    assert not AuditLog.objects.filter(action="host.drain_requested").exists()


def test_a_user_with_manage_hosts_drains_and_undrains(client, django_user_model, fleet):
    user = django_user_model.objects.create_user("hostop", password="x", is_staff=True)
    grant(user, MANAGE_HOSTS)
    client.force_login(user)
    post_action(client, "drain_hosts", ["alive"])
    host = Host.objects.get(name="alive")
    assert host.draining and host.draining_since is not None
    (row,) = AuditLog.objects.filter(action="host.drain_requested", target="alive")
    assert row.actor == "hostop" and row.details == {"bots": 1}
    post_action(client, "undrain_hosts", ["alive"])
    assert not Host.objects.get(name="alive").draining
    assert AuditLog.objects.filter(action="host.undrained", target="alive", actor="hostop").count() == 1


def test_host_commands_list_drain_undrain_and_forget(fleet, capsys):
    call_command("host", "list")
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["alive", "alive"], ["draining", "draining"], ["lost", "lost"]]
    assert "bots=1/4" in out[0]
    call_command("host", "drain", "alive")
    assert Host.objects.get(name="alive").draining
    call_command("host", "undrain", "alive")
    assert not Host.objects.get(name="alive").draining
    call_command("host", "forget", "lost")
    assert not Host.objects.filter(name="lost").exists()
    assert AuditLog.objects.filter(action="host.forgotten", target="lost").exists()


def run_host(child_env, *args: str):
    import subprocess

    return subprocess.run(
        [PYTHON, "manage.py", "host", *args], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("drain", "nosuch"), "no host named 'nosuch'"),
        (("forget", "alive"), "host 'alive' is alive: only a lost host can be forgotten"),
        (("forget", "holding"), "host 'holding' still holds 1 bot(s)"),
        (("undrain",), "the following arguments are required: name"),
    ],
)
def test_host_commands_bad_input_is_one_stderr_line_and_a_failure(child_env, fleet, args, message):
    Host.objects.create(name="holding", capacity=1, last_seen=db_now() - timedelta(minutes=5))
    Bot.objects.create(name="Held", slug="held", host="holding", status=Status.LOST)
    before = list(Host.objects.order_by("name").values_list("name", "draining"))
    done = run_host(child_env, *args)
    assert done.returncode != 0
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert message in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert list(Host.objects.order_by("name").values_list("name", "draining")) == before


def test_metrics_show_every_host_state_and_each_hosts_bots(client, fleet):
    text = client.get("/metrics").content.decode()
    assert 'deia_hosts{state="alive"} 1.0' in text
    assert 'deia_hosts{state="draining"} 1.0' in text
    assert 'deia_hosts{state="lost"} 1.0' in text
    assert 'deia_host_bots{host="alive"} 1.0' in text
    assert 'deia_host_capacity{host="alive"} 4.0' in text
    assert 'deia_host_state{host="lost",state="lost"} 1.0' in text
    assert 'deia_host_state{host="lost",state="alive"} 0.0' in text
    assert 'deia_host_draining_since_timestamp_seconds{host="draining"}' in text
    assert 'deia_host_draining_since_timestamp_seconds{host="alive"}' not in text
    assert 'deia_bot_reschedules_total{reason="drain"} 0.0' in text


def test_the_overview_hosts_figure_is_critical_while_a_host_is_lost(fleet):
    from ops.console.overview import Level, hosts_tile

    tile = hosts_tile()
    assert tile.value == "1 alive, 1 draining, 1 lost" and tile.level == Level.CRIT
    hosts.forget("lost", actor="test")
    assert hosts_tile().level == Level.WARN

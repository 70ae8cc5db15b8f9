"""SSRF: a user's own model server URL may not reach the deployment's network.

Loopback servers only: every "victim" is a fake OpenAI server on 127.0.0.1 and every test
asserts it received nothing. Addresses outside the machine (10.0.0.1, 169.254.169.254) are
refused by the check before any connection: IP literals resolve without a lookup, and no
test patches anything that would connect.
"""

from __future__ import annotations

import socket
import threading

import pytest
from django.core.exceptions import ValidationError

from agents.models import Decision, LLMCredential
from agents.services import agent_decision_run, llm_credential_set
from alpha_platform.common import crypto, outbound
from tests.factories import make_agent
from tests.fakes.openai_server import FakeOpenAIServer
from trading.models import Order

KEY = "sk-user-own-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def no_traffic_off_the_machine(monkeypatch):
    """A tripwire, not a fake: should the guard ever regress, a connection to an address off
    the loopback is refused here instead of being sent, and the test fails."""
    attempts = []
    real = socket.create_connection

    def create_connection(address, *args, **kwargs):
        host = str(address[0]).strip("[]")
        if host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(host)
            raise OSError(f"test tripwire: no connection to {host} off the loopback")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    yield attempts
    assert attempts == [], f"tried to connect off the loopback: {attempts}"


@pytest.fixture
def victim():
    """A service on the machine's loopback that no user URL may reach."""
    with FakeOpenAIServer(api_key=KEY) as server:
        server.script(server.forever(server.tool_calls(("open_long", {
            "symbol": "BTC/USDT", "quantity": None, "usd_notional": 500, "leverage": 1, "stop_loss": None,
            "take_profit": None, "order_type": "market", "limit_price": None}))))
        yield server


@pytest.fixture
def operator(settings):
    """The platform's own model server (OPENAI_BASE_URL): allowed implicitly."""
    with FakeOpenAIServer(api_key=KEY) as server:
        settings.OPENAI_BASE_URL = server.url + "/v1"
        settings.OPENAI_API_KEY = KEY
        settings.LLM_ALLOWED_HOSTS = []
        settings.LLM_MAX_RETRIES = 0
        settings.LLM_TIMEOUT_SECONDS = 5
        yield server


def refused_urls(port: int) -> list[tuple[str, str]]:
    return [
        (f"http://127.0.0.1:{port}/v1", "must use https"),
        (f"https://127.0.0.1:{port}/v1", "loopback"),
        (f"http://[::1]:{port}/v1", "must use https"),
        (f"https://[::1]:{port}/v1", "loopback"),
        (f"https://localhost:{port}/v1", "localhost resolves to"),
        (f"https://[::ffff:127.0.0.1]:{port}/v1", "loopback"),
        ("https://10.0.0.1/v1", "private"),
        ("https://192.168.1.10:8443/v1", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/v1", "link-local"),
        ("https://[fd00::1]/v1", "private"),
        ("https://[::ffff:10.0.0.1]/v1", "private"),
        ("https://0.0.0.0/v1", "unspecified"),
        ("https://224.0.0.1/v1", "multicast"),
        ("https://100.64.0.1/v1", "non-public"),
        ("ftp://example.com/v1", "only http and https"),
    ]


# --------------------------------------------------------------------------- the policy (no Django)


@pytest.mark.parametrize("index", range(16))
def test_private_loopback_and_link_local_urls_are_refused(index):
    url, why = refused_urls(8001)[index]
    with pytest.raises(outbound.OutboundRefused, match=why):
        outbound.check_url(url)


def test_the_allow_list_admits_a_host_or_a_host_and_port():
    outbound.check_url("http://127.0.0.1:8001/v1", allowed=["127.0.0.1:8001"])
    outbound.check_url("http://127.0.0.1:9999/v1", allowed=["127.0.0.1"])
    outbound.check_url("http://[::1]:8001/v1", allowed=["[::1]:8001"])
    outbound.check_url("http://LLM.internal:8000/v1", allowed=["llm.internal:8000"])  # no lookup when allowed
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_url("http://127.0.0.1:8002/v1", allowed=["127.0.0.1:8001"])
    assert outbound.allowed_hosts(["a.example"], "http://127.0.0.1:8001/v1", "") == ["a.example", "127.0.0.1:8001"]


def test_a_public_https_address_passes_the_check():
    outbound.check_url("https://93.184.216.34/v1")  # an IP literal: checked, not contacted


def _resolver(*answers):
    """getaddrinfo stand-in: one list of addresses per call, the last one repeated."""
    calls = []

    def resolve(host, port, type=0, **kw):  # noqa: A002
        calls.append(host)
        addresses = answers[min(len(calls), len(answers)) - 1]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]
    resolve.calls = calls
    return resolve


def test_a_host_with_any_private_address_is_refused():
    policy = outbound.OutboundPolicy([], resolver=_resolver(["93.184.216.34", "127.0.0.1"]))
    with pytest.raises(outbound.OutboundRefused, match="resolves to 127.0.0.1, a loopback address"):
        policy.check_url("https://mixed.example/v1")


def test_dns_rebinding_is_refused_at_connect_time(victim):
    """The name passed the check with a public answer; at connect time it answers loopback.
    The transport resolves again itself and refuses: the victim sees nothing."""
    resolver = _resolver(["93.184.216.34"], ["127.0.0.1"])
    policy = outbound.OutboundPolicy([], resolver=resolver)
    url = f"https://rebind.example:{victim.url.rsplit(':', 1)[1]}/v1/chat/completions"
    policy.check_url(url)  # first answer: public
    with outbound.guarded_http_client(policy) as http, pytest.raises(outbound.OutboundRefused, match="loopback"):
        http.post(url, json={})
    assert resolver.calls == ["rebind.example", "rebind.example"]
    assert victim.requests == []


def test_the_transport_refuses_plain_http_and_loopback_names(victim):
    policy = outbound.OutboundPolicy([])
    port = victim.url.rsplit(":", 1)[1]
    with outbound.guarded_http_client(policy) as http:
        with pytest.raises(outbound.OutboundRefused, match="must use https"):
            http.post(victim.url + "/v1/chat/completions", json={})
        with pytest.raises(outbound.OutboundRefused, match="loopback"):
            http.post(f"https://localhost:{port}/v1/chat/completions", json={})
    assert victim.requests == []


def test_the_transport_reaches_an_allowed_host(victim):
    policy = outbound.OutboundPolicy(lambda: ["127.0.0.1:" + victim.url.rsplit(":", 1)[1]])
    with outbound.guarded_http_client(policy) as http:
        response = http.post(victim.url + "/v1/chat/completions", json={"model": "m"},
                             headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200 and len(victim.requests) == 1


def test_a_body_without_a_length_is_counted_as_it_arrives():
    body = outbound._BoundedBody(iter([b"x" * 1000] * 5), 4096)
    with pytest.raises(outbound.ResponseTooLarge, match="larger than 4096 bytes"):
        b"".join(body)
    assert b"".join(outbound._BoundedBody(iter([b"x" * 1000] * 4), 4096)) == b"x" * 4000


# --------------------------------------------------------------------------- a user's own URL


@pytest.mark.django_db
@pytest.mark.parametrize("index", range(15))
def test_a_users_private_url_is_refused_when_saved(user, operator, victim, index):
    url, why = refused_urls(int(victim.url.rsplit(":", 1)[1]))[index]
    with pytest.raises(ValidationError) as info:
        llm_credential_set(owner=user, api_key=KEY, base_url=url)
    assert "base_url" in info.value.message_dict and why in info.value.message_dict["base_url"][0]
    assert not LLMCredential.objects.exists()
    assert victim.requests == [] and operator.requests == []


@pytest.mark.django_db
def test_the_api_refuses_a_loopback_url_with_a_clear_400(user, operator, victim):
    from tests.api.conftest import token_client

    response = token_client(user).put("/api/llm-credential/", {"api_key": KEY, "base_url": victim.url + "/v1"},
                                      format="json")
    assert response.status_code == 400
    assert "not allowed" in str(response.data["base_url"]) and "https" in str(response.data["base_url"])
    assert not LLMCredential.objects.exists() and victim.requests == []


def _store_unchecked(user, base_url):
    """A URL already stored (saved while the operator allowed it, or written by hand)."""
    LLMCredential.objects.create(owner=user, api_key_encrypted=crypto.encrypt_json({"api_key": KEY}),
                                 api_key_hint="…cdef", base_url=base_url)


@pytest.mark.django_db
@pytest.mark.parametrize("template, why", [
    ("http://127.0.0.1:{port}/v1", "must use https"),
    ("https://localhost:{port}/v1", "loopback"),
    ("https://[::1]:{port}/v1", "loopback"),
    ("https://10.0.0.1/v1", "private"),
    ("https://169.254.169.254/v1", "link-local"),
])
def test_a_stored_private_url_is_refused_before_every_call(user, market, operator, victim, template, why):
    _store_unchecked(user, template.format(port=victim.url.rsplit(":", 1)[1]))
    agent = make_agent(user, model_name="gpt-4o-mini", symbols=["BTC/USDT"])
    decision = agent_decision_run(agent=agent)
    decision.refresh_from_db()
    assert decision.status == Decision.Status.ERROR and why in decision.error, decision.error
    assert victim.requests == [] and operator.requests == []
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_a_redirect_from_an_allowed_server_to_a_loopback_one_is_not_followed(user, market, operator, victim):
    operator.script(operator.redirect(victim.url + "/v1/chat/completions"))
    agent = make_agent(user, model_name="gpt-4o-mini", symbols=["BTC/USDT"])
    decision = agent_decision_run(agent=agent)
    decision.refresh_from_db()
    assert decision.status == Decision.Status.ERROR and "redirect" in decision.error, decision.error
    assert len(operator.requests) == 1 and victim.requests == []
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_a_host_the_operator_allows_is_used(user, market, operator, victim, settings):
    settings.LLM_ALLOWED_HOSTS = ["127.0.0.1:" + victim.url.rsplit(":", 1)[1]]
    llm_credential_set(owner=user, api_key=KEY, base_url=victim.url + "/v1")
    victim._script.clear()
    victim.script(victim.reply("nothing to do"))
    agent = make_agent(user, model_name="gpt-4o-mini", symbols=["BTC/USDT"])
    decision = agent_decision_run(agent=agent)
    assert decision.status == Decision.Status.HELD, decision.error
    assert len(victim.requests) == 1 and operator.requests == []


@pytest.mark.django_db
def test_the_admin_saves_a_users_base_url_through_the_same_check(client, staff_user, user):
    """A staff user editing a user's model server in the admin cannot point it inside the network."""
    from agents.models import LLMCredential

    credential = LLMCredential.objects.create(owner=user, base_url="")
    client.force_login(staff_user)
    url = f"/admin/agents/llmcredential/{credential.pk}/change/"
    refused = client.post(url, {"owner": user.pk, "base_url": "http://169.254.169.254/latest"})
    assert refused.status_code == 200 and "not allowed" in refused.content.decode()
    credential.refresh_from_db()
    assert credential.base_url == ""


# --------------------------------------------------------------------------- a lookup that never answers


class _HangingResolver:
    """getaddrinfo for names under ``hang.example`` blocks until released (a nameserver that
    never answers; it gives up by itself after GIVE_UP s, as a real resolver would); loopback
    names are resolved for real; any other name is refused here, not sent to a nameserver."""

    GIVE_UP = 15.0

    def __init__(self, real):
        self.real = real
        self.started = threading.Event()
        self.release = threading.Event()
        self.answered = threading.Event()

    def __call__(self, host, *args, **kwargs):
        if str(host) in ("127.0.0.1", "::1", "localhost"):
            return self.real(host, *args, **kwargs)
        if not str(host).rstrip(".").endswith("hang.example"):
            raise socket.gaierror(socket.EAI_NONAME, f"test resolver: no lookup of {host}")
        self.started.set()
        try:
            self.release.wait(self.GIVE_UP)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        finally:
            self.answered.set()


@pytest.fixture
def hanging_resolver(monkeypatch):
    resolver = _HangingResolver(socket.getaddrinfo)
    monkeypatch.setattr(outbound.socket, "getaddrinfo", resolver)
    # and the policy's default resolver, were it bound when the module was imported
    monkeypatch.setattr(outbound.OutboundPolicy.__init__, "__kwdefaults__",
                        {**(outbound.OutboundPolicy.__init__.__kwdefaults__ or {}), "resolver": resolver})
    yield resolver
    resolver.release.set()  # after the test's assertions: frees the pool's thread


def test_check_url_is_cut_at_its_timeout_while_the_lookup_hangs(hanging_resolver):
    with pytest.raises(outbound.ResolutionTimeout, match="did not resolve within 0.3s"):
        outbound.check_url("https://llm.hang.example/v1", timeout=0.3)
    assert hanging_resolver.started.is_set() and not hanging_resolver.answered.is_set()
    # refused like any name that does not resolve (saving such a URL gets the usual 400)
    assert issubclass(outbound.ResolutionTimeout, outbound.OutboundRefused)


def test_check_url_without_a_timeout_has_a_default_bound(hanging_resolver, monkeypatch):
    monkeypatch.setattr(outbound, "DEFAULT_RESOLVE_SECONDS", 0.3)
    with pytest.raises(outbound.ResolutionTimeout):
        outbound.check_url("https://llm.hang.example/v1")
    assert not hanging_resolver.answered.is_set()


def test_a_model_call_ends_within_its_bound_while_the_lookup_hangs(hanging_resolver):
    """complete(timeout=T) bounds the connect-time lookup too: the call fails as a temporary
    error (a connect timeout) while the resolver is still blocked, and nothing was sent."""
    from agents.llm import LLMTemporaryError, OpenAIChatClient

    with outbound.guarded_http_client(outbound.OutboundPolicy([])) as http:
        llm = OpenAIChatClient(KEY, base_url="https://llm.hang.example/v1", timeout=30, max_retries=2,
                               http_client=http)
        with pytest.raises(LLMTemporaryError, match="timed out"):
            llm.complete([{"role": "user", "content": "hi"}], [], timeout=0.5)
    assert hanging_resolver.started.is_set() and not hanging_resolver.answered.is_set()


@pytest.mark.django_db
def test_a_decision_is_not_held_past_its_deadline_by_a_lookup(user, market, operator, hanging_resolver, settings):
    """The check before the graph starts is bounded by the decision's time left (here 1 s,
    though LLM_TIMEOUT_SECONDS is 30): the decision ends with an error, the resolver still blocked."""
    settings.AGENT_TICK_TIME_LIMIT = 1
    settings.LLM_TIMEOUT_SECONDS = 30
    _store_unchecked(user, "https://llm.hang.example/v1")
    agent = make_agent(user, model_name="gpt-4o-mini", symbols=["BTC/USDT"])
    decision = agent_decision_run(agent=agent)
    decision.refresh_from_db()
    assert decision.status == Decision.Status.ERROR and "did not resolve within" in decision.error, decision.error
    assert hanging_resolver.started.is_set() and not hanging_resolver.answered.is_set()
    assert operator.requests == [] and not Order.objects.exists()

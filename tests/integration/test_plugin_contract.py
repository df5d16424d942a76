"""Issue 9 item 1: the plugin contract (ficus/plugin.h) is checked in every build, and a plugin that breaks it costs
one request, never the process.

The test-only `test_delay` plugin (FICUS_TEST_PLUGINS=1) breaks the contract on purpose (`misbehave:`): it returns a
status that contradicts what it did, an unknown status, resumes twice, answers and resumes, resumes and answers,
answers twice. For each, several requests over several connections (both workers): the client gets the plugin's own
answer when it sent one (418) and a 500 {"error":"internal_error"} when nothing was sent, the request is logged with
error plugin_contract_violation in that case, ficus_plugin_contract_violations_total{plugin="test_delay"} counts one
violation per request, the error log names the plugin and what it did, and a well-behaved route answers throughout.
This runs in the Release and the ASan+UBSan suites alike: there is no build in which a violation aborts.
"""
import pytest
import requests

from conftest import SLOW, module_ficus, wait_for

# mode -> (status, body, what the log line says)
MODES = {
    "continue_after_respond": (418, {"error": "test_delay"}, "responded but returned CONTINUE"),
    "pause_after_respond": (418, {"error": "test_delay"}, "responded but returned PAUSE"),
    "responded_without_response": (500, {"error": "internal_error"}, "returned RESPONDED without responding"),
    "bad_status": (500, {"error": "internal_error"}, "returned a status that is not CONTINUE, PAUSE or RESPONDED"),
    "resume_twice": (200, None, "resumed a request that is not paused"),
    "respond_then_resume": (418, {"error": "test_delay"}, "resumed a request already answered"),
    "resume_then_respond": (418, {"error": "test_delay"}, "responded after resuming the request"),
    "respond_twice": (418, {"error": "test_delay"}, "sent a second response"),
}
CONNECTIONS = 4
PER_CONNECTION = 3

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
upstreams:
  a: { endpoints: ["http://$echo_a"] }
routes:
  - name: fine
    match: { path_prefix: /fine }
    test_delay: { ms: 5 }
    to: a
""" + "".join(f"""\
  - name: {m}
    match: {{ path_prefix: /{m} }}
    test_delay: {{ ms: 5, misbehave: {m} }}
    to: a
""" for m in MODES)


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG, env={"FICUS_TEST_PLUGINS": "1"})


def violations(fx):
    return fx.metrics().get("ficus_plugin_contract_violations_total", plugin="test_delay")


@pytest.mark.parametrize("mode", list(MODES))
def test_violation_costs_one_request_not_the_process(fx, mode):
    status, body, what = MODES[mode]
    before = violations(fx)
    assert before is not None, "ficus_plugin_contract_violations_total{plugin=\"test_delay\"} missing from /metrics"
    for c in range(CONNECTIONS):
        with requests.Session() as s:  # its own connection: SO_REUSEPORT spreads them over both workers
            s.verify, s.trust_env = fx.certs.ca, False
            for k in range(PER_CONNECTION):
                r = s.get(fx.url(f"/{mode}/{c}/{k}"), timeout=10 * SLOW)
                assert r.status_code == status, (mode, r.status_code, r.text[:200])
                if body is not None:
                    assert r.json() == body
                else:
                    assert r.headers.get("x-upstream") == "a"
                ok = s.get(fx.url(f"/fine/{c}/{k}"), timeout=10 * SLOW)
                assert ok.status_code == 200 and ok.headers.get("x-upstream") == "a", (ok.status_code, ok.text[:200])
    n = CONNECTIONS * PER_CONNECTION
    wait_for(lambda: violations(fx) - before == n, 5 * SLOW, what=f"{n} violations counted for {mode}")
    assert fx.alive() and fx.crash_report() is None, fx.stderr_tail(20)
    assert f"plugin contract violation: plugin test_delay {what}" in fx.stderr(), fx.stderr_tail(20)
    if status == 500:
        fx.wait_access_log(lambda es: len([e for e in es if e.get("error") == "plugin_contract_violation"
                                           and str(e.get("path", "")).startswith(f"/{mode}/")]) == n,
                           what=f"{n} access log entries with error plugin_contract_violation")


def test_violations_are_rate_limited_in_the_log(fx):
    """A plugin that breaks the contract on every request does not write a line per request."""
    lines_before = fx.stderr().count("plugin contract violation: plugin test_delay returned RESPONDED")
    with requests.Session() as s:
        s.verify, s.trust_env = fx.certs.ca, False
        for k in range(50):
            assert s.get(fx.url(f"/responded_without_response/flood/{k}"), timeout=10 * SLOW).status_code == 500
    lines = fx.stderr().count("plugin contract violation: plugin test_delay returned RESPONDED") - lines_before
    assert lines <= 4, f"{lines} log lines for 50 violations within a few seconds"
    assert fx.metrics().get("ficus_plugin_contract_violations_total", plugin="sso") == 0


PRE_ROUTE = CONFIG.replace("upstreams:\n", "test_delay: { path: /_pre, ms: 5, misbehave: $mode }\nupstreams:\n", 1)


@pytest.mark.parametrize("mode", ["responded_without_response", "continue_after_respond", "resume_twice"])
def test_pre_route_violations_are_checked_too(ficus_factory, mode):
    """The pre-route phase (plugins that own paths on every host, before routing) runs under the same check."""
    fx = ficus_factory(PRE_ROUTE, env={"FICUS_TEST_PLUGINS": "1"}, mode=mode)
    status, body, what = MODES[mode]
    for c in range(CONNECTIONS):
        with requests.Session() as s:
            s.verify, s.trust_env = fx.certs.ca, False
            r = s.get(fx.url(f"/_pre/fine/{c}"), timeout=10 * SLOW)
            if status == 200:  # resumed (twice): routing goes on, and no route matches /_pre/...
                assert r.status_code == 404 and r.json() == {"error": "no_route"}, (r.status_code, r.text[:200])
            else:
                assert r.status_code == status and r.json() == body, (mode, r.status_code, r.text[:200])
            ok = s.get(fx.url(f"/fine/{c}"), timeout=10 * SLOW)  # not under /_pre: the pre-route plugin lets it pass
            assert ok.status_code == 200 and ok.headers.get("x-upstream") == "a", (ok.status_code, ok.text[:200])
    wait_for(lambda: violations(fx) == CONNECTIONS, 5 * SLOW, what=f"{CONNECTIONS} violations counted")
    assert f"plugin contract violation: plugin test_delay {what} (route -," in fx.stderr(), fx.stderr_tail(20)
    assert fx.alive() and fx.crash_report() is None

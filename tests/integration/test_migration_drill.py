"""The migration drill of issue 12 (README "Migrating a route"), against real upstream processes.

A route is ramped from the monolith to the new `orders` service, 0 → 1 → 10 → 50 → 100 %, by editing the YAML and
sending SIGHUP, while many distinct users (X-User-Id) keep sending requests. Asserted:
  - every user stays on one side between reloads, and only ever moves monolith → orders (never back): each user's
    side is read from the access log (`upstream_name`, `decision`: a request that fell back was bucketed on orders);
  - at each step every user is where an independent reference of the mapping says (split_ref.py);
  - the new service is SIGKILLed at 50 %: 0 failed requests (all idempotent GETs are caught by `fallback: monolith`),
    and its failures are visible in ficus_upstream_responses_total{upstream="orders",code="5xx"} and
    ficus_fallbacks_total{from="orders",to="monolith"};
  - every request is mirrored to a shadow that sleeps 2 s and answers differently: the copies are bounded
    (max_inflight; skipped ones counted), never delay the primaries (all answered), and the comparison counts the
    differences (body_differs).
One worker, so that a reload switches every request at one instant (with several workers each switches on its own
loop's next turn, and a user's consecutive requests could straddle two generations on two workers).
The primary's p99 with a mirror vs without is measured in loadtest/ (a ratio in one run), not asserted here."""
import collections
import threading
import time
import uuid

import httpx
import pytest

import split_ref
from conftest import SLOW, wait_for
from traffic_fixtures import Shadow

TEMPLATE = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
  expose_upstream: true
upstreams:
  monolith: { endpoints: ["http://$monolith"] }
  orders: { endpoints: ["http://$orders"], connect_timeout: 500ms }
  orders-shadow: { endpoints: ["http://$shadow"] }
routes:
  - name: orders
    match: { path_prefix: /api/orders }
    split:
      key: [header:X-User-Id]
      salt: orders-2026
      to:
        - { upstream: orders, weight: @NEW@ }
        - { upstream: monolith, weight: @OLD@ }
    fallback: monolith
    mirror: { upstream: orders-shadow, sample: 100%, timeout: 5s, max_inflight: 16, compare: true }
"""

USERS = [f"user-{i}" for i in range(120)]
THREADS = 6
RAMP = [0, 1, 10, 50, 100]


def config(new):
    return TEMPLATE.replace("@NEW@", str(new)).replace("@OLD@", str(100 - new))


class Load:
    """THREADS threads, each owning a slice of USERS and cycling through it: a user's requests are sequential."""

    def __init__(self, fx):
        self.fx = fx
        self.records = []  # (user, request_id, status, served_by)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(USERS[t::THREADS],)) for t in range(THREADS)]

    def run(self, users):
        with self.fx.client(limits=httpx.Limits(max_connections=2)) as c:
            i = 0
            while not self.stop.is_set():
                user = users[i % len(users)]
                i += 1
                rid = uuid.uuid4().hex
                try:
                    r = c.get(f"/api/orders/{i}", headers={"x-user-id": user, "x-request-id": rid})
                    rec = (user, rid, r.status_code, r.headers.get("x-ficus-upstream"))
                except httpx.HTTPError as e:
                    rec = (user, rid, 0, repr(e))
                with self.lock:
                    self.records.append(rec)

    def count(self):
        with self.lock:
            return len(self.records)

    def wait_more(self, n):
        target = self.count() + n
        wait_for(lambda: self.count() >= target, 60 * SLOW, what=f"{n} more requests under load")

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def all_compared(m):
    """m when every copy sent on the route has its comparison result, else None."""
    verdicts = sum(m.sum("ficus_mirror_compare_total", route="orders", result=k)
                   for k in ("match", "status_differs", "body_differs", "shadow_error", "shadow_timeout"))
    return m if verdicts >= m.sum("ficus_mirror_requests_total", route="orders", result="sent") else None


@pytest.mark.timeout(600)
def test_migration_drill(ficus_factory, echo_factory):
    monolith = echo_factory("monolith")
    orders = echo_factory("orders")
    shadow = Shadow("orders-shadow", delay_ms=2000)
    try:
        fx = ficus_factory(config(0), monolith=monolith.addr, orders=orders.addr, shadow=shadow.addr)
        steps = []  # (weight of orders, index of the first record of the step)
        with Load(fx) as load:
            first_reload_at = None  # requests before it were all bucketed at 0 %
            for new in RAMP:
                if new != 0:
                    if first_reload_at is None:
                        first_reload_at = load.count()
                    assert fx.reload(config(new)).ok
                steps.append((new, load.count()))
                load.wait_more(3 * len(USERS))  # every user several times at this step
                if new == 50:
                    orders.proc.kill()  # SIGKILL the new service mid-ramp, under load
                    orders.proc.wait(5)
                    steps.append((50, load.count()))  # a step of its own: orders users now fall back
                    load.wait_more(3 * len(USERS))
        records = list(load.records)
        # the copies still in flight (the shadow answers after 2 s) are compared when they end: wait until every copy
        # sent has its verdict (counted, not a sleep; bounded by the shadow's delay and the mirror's 5 s timeout)
        m = wait_for(lambda: all_compared(fx.metrics()), (2 + 5 + 5) * SLOW, interval=0.2,
                     what="a comparison for every mirrored copy")
    finally:
        shadow.stop()

    # 0 failed requests: everything answered 200, by one of the two real services
    failed = [r for r in records if r[2] != 200 or r[3] not in ("orders", "monolith")]
    assert failed == [], f"{len(failed)} of {len(records)} requests failed, e.g. {failed[:5]}"

    # where each request was bucketed, from the access log (a fallback was bucketed on orders)
    log = {e["request_id"]: e for e in fx.wait_access_log(
        lambda es: es if sum(1 for e in es if e.get("route") == "orders") >= len(records) else None,
        timeout=30, what="every drill request in the access log")}

    def chosen(rec):
        e = log[rec[1]]
        return "orders" if e["decision"] == "fallback" else e["upstream_name"]

    # never back to the monolith, and a move only at a reload
    last = {}
    moves = collections.Counter()
    bounds = [s[1] for s in steps] + [len(records)]
    for k, (new, start) in enumerate(steps):
        # a reload is seen in ficus's log a little after the worker switched: the last requests of a step's window may
        # already have been bucketed by the next step's weights, the first ones (in flight at the reload) by the
        # previous step's
        nxt = steps[k + 1][0] if k + 1 != len(steps) else new
        expected = [[("orders", w), ("monolith", 100 - w)] for w in (new, nxt)]
        for n, rec in enumerate(records[start:bounds[k + 1]]):
            side = chosen(rec)
            user = rec[0]
            if last.get(user) == "orders":
                assert side == "orders", f"{user} moved back to the monolith at {new} %"
            if last.get(user) == "monolith" and side == "orders":
                moves[new] += 1
            last[user] = side
            # users are where the reference of the mapping puts them
            if n >= THREADS * 2:
                assert side in {split_ref.side("orders-2026", user, t) for t in expected}, (user, new, side)
    # nobody on the new side at 0 % (a move counted in the 0 % window came after the first reload took effect, before
    # the test saw its log line), and everyone moved exactly once
    assert all(chosen(r) == "monolith" for r in records[:first_reload_at])
    assert sum(moves.values()) == len(USERS), moves
    assert all(v == "orders" for v in last.values())

    print(f"\n[drill] {len(records)} requests from {len(USERS)} users over steps {[s[0] for s in steps]}: moves per step "
          f"{dict(moves)}, fallbacks {m.sum('ficus_fallbacks_total', route='orders'):.0f}, orders 5xx "
          f"{m.sum('ficus_upstream_responses_total', route='orders', upstream='orders', code='5xx'):.0f}, mirror "
          f"{ {k: int(m.sum('ficus_mirror_requests_total', route='orders', result=k)) for k in ('sent', 'skipped_capacity', 'error', 'timeout')} }, "
          f"compare { {k: int(m.sum('ficus_mirror_compare_total', route='orders', result=k)) for k in ('match', 'body_differs', 'shadow_timeout')} }")
    # the new side's failure is visible, and the fallback caught it
    assert m.sum("ficus_upstream_responses_total", route="orders", upstream="orders", code="5xx") > 0
    assert m.sum("ficus_fallbacks_total", route="orders", **{"from": "orders"}, to="monolith") > 0
    assert m.sum("ficus_split_decisions_total", route="orders", upstream="monolith", decision="fallback") > 0
    # mirror: bounded (skips counted), and the differing shadow counted by the comparison
    sent = m.sum("ficus_mirror_requests_total", route="orders", result="sent")
    assert sent > 0 and m.sum("ficus_mirror_requests_total", route="orders", result="skipped_capacity") > 0
    assert m.sum("ficus_mirror_compare_total", route="orders", result="body_differs") > 0
    assert m.sum("ficus_mirror_compare_total", route="orders", result="match") == 0

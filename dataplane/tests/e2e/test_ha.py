"""A highly available control plane: two replicas on one PostgreSQL and
data planes given both replicas' URLs. The fleet registry, the revision,
rate-limit shares and singleton work are shared through the database, so
any replica tells the whole truth and either can go away."""

import secrets
import subprocess
import time

import anthropic
import pytest

from fleet import ADMIN_PASSWORD, HELLO, Fleet, client, free_port, start_process_env, wait_until, works
from conftest import TARGET_DIR, stop_process


def psql(sql, db="postgres"):
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )


class Replicas(Fleet):
    """Fleet with several control-plane replicas on one database."""

    def __init__(self, double_url, tmp, database_url, replicas=("A", "B")):
        super().__init__(double_url, tmp)
        self.database_url = database_url
        self.ports = {r: free_port() for r in replicas}
        self.cps = {}
        self.cp_url = self.replica_url(replicas[0])

    def replica_url(self, r):
        return f"http://127.0.0.1:{self.ports[r]}"

    def start_replica(self, r):
        env = {
            "CCAG_DATA_DIR": str(self.tmp / f"cp-{r}"),
            "CCAG_GRPC_ADDR": f"127.0.0.1:{self.ports[r]}",
            "CCAG_HTTP_ADDR": "127.0.0.1:0",
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "CCAG_DATAPLANE_TOKEN": self.token,
            "DATABASE_URL": self.database_url,
            "CCAG_REPLICA_ID": f"cp-{r}",
        }
        env.update(self.cp_env)
        self.cps[r], _ = start_process_env(TARGET_DIR / "debug" / "ccag-controlplane", env, "grpc listening on ")

    def kill_replica(self, r):
        p = self.cps.pop(r)
        p.kill()
        p.wait(timeout=10)

    def stop_replica(self, r):
        stop_process(self.cps.pop(r))

    def start_dp_on(self, name, replicas):
        """A data plane given these replicas' URLs, the first preferred."""
        self.dp_env["CCAG_CONTROLPLANE_URL"] = ",".join(self.replica_url(r) for r in replicas)
        try:
            return self.start_dp(name)
        finally:
            self.dp_env.pop("CCAG_CONTROLPLANE_URL")

    def via(self, r):
        """Points the CLI at replica `r`, signed in there (a CLI session
        names its endpoint)."""
        self.cp_url = self.replica_url(r)
        self.config_dir = self.tmp / f"cli-{r}"
        if not self.config_dir.exists():
            self.config_dir.mkdir()
            self.login()
        return self

    def status(self, r):
        return self.via(r).ccag_json("status")

    def stop_all(self):
        for name in list(self.dps):
            self.stop_dp(name)
        for r in list(self.cps):
            self.stop_replica(r)


@pytest.fixture
def database():
    db = f"ccag_ha_{secrets.token_hex(6)}"
    psql(f"CREATE DATABASE {db}")
    yield db
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@pytest.fixture
def ha(bins, shared_double_url, tmp_path, database):
    """Replicas A and B; data plane "a" prefers A, "b" prefers B, both know both."""
    f = Replicas(shared_double_url, tmp_path, f"postgres://postgres@127.0.0.1:5432/{database}")
    try:
        f.start_replica("A")
        f.start_replica("B")
        f.via("A")
        f.start_dp_on("a", ["A", "B"])
        f.start_dp_on("b", ["B", "A"])
        assert wait_until(lambda: on_replicas(f, "A") == {"dp-a": "cp-A", "dp-b": "cp-B"}, timeout=10)
        yield f
    finally:
        f.stop_all()


def on_replicas(f, via):
    return {d["id"]: d.get("replica") for d in f.status(via)["dataplanes"]}


def create_key(f, *extra):
    return f.ccag_json("keys", "create", "--name", "ha", *extra)


def test_a_key_revoked_through_one_replica_is_refused_by_a_data_plane_on_the_other(ha):
    created = create_key(ha.via("A"))
    key = created["key"]
    assert wait_until(lambda: works(ha.url("b"), key), timeout=5), "a key made on A works on a data plane of B"
    ha.via("A").ccag("keys", "revoke", created["id"])
    revoked_at = time.monotonic()
    refused = None
    while time.monotonic() - revoked_at < 3 and refused is None:
        try:
            client(ha.url("b"), key).models.list()
        except anthropic.AuthenticationError:
            refused = time.monotonic() - revoked_at
        time.sleep(0.02)
    assert refused is not None and refused < 1.0, refused


def test_status_on_either_replica_lists_the_whole_fleet_with_acknowledged_revisions(ha):
    create_key(ha.via("B"))

    def whole(via):
        s = ha.status(via)
        dps = {d["id"]: d for d in s["dataplanes"]}
        return set(dps) == {"dp-a", "dp-b"} and all(
            int(d["acked_version"]) == int(s["config_version"]) for d in dps.values()
        )

    assert wait_until(lambda: whole("A"), timeout=5), ha.status("A")
    assert wait_until(lambda: whole("B"), timeout=5), ha.status("B")
    a, b = ha.status("A"), ha.status("B")
    assert (a["replica"], b["replica"]) == ("cp-A", "cp-B")
    assert a["config_version"] == b["config_version"] and a["config_epoch"] == b["config_epoch"]


def test_a_data_plane_moves_to_the_other_replica_when_its_own_is_killed(ha):
    ha.kill_replica("A")
    assert wait_until(lambda: on_replicas(ha, "B").get("dp-a") == "cp-B", timeout=15), ha.status("B")
    # And it keeps receiving changes there.
    key = create_key(ha.via("B"))["key"]
    assert wait_until(lambda: works(ha.url("a"), key), timeout=5)


def test_usage_reaches_the_spend_log_exactly_once_across_a_replica_failover(ha):
    """Usage made before a data plane's replica dies, and after, is
    reported to the other replica: none lost, none counted twice (the spend
    log keeps one row per request id, whichever replica a batch reached)."""
    created = create_key(ha.via("B"))
    key, key_id = created["key"], created["id"]
    assert wait_until(lambda: works(ha.url("a"), key), timeout=5)
    sent = 1
    for _ in range(10):
        assert works(ha.url("a"), key)
        sent += 1
    ha.kill_replica("A")
    for _ in range(10):
        assert works(ha.url("a"), key), "the data plane keeps serving while its replica is gone"
        sent += 1
    assert wait_until(lambda: ha.via("B").usage_by_key().get(key_id) == sent, timeout=20), (
        ha.via("B").usage_by_key().get(key_id),
        sent,
    )


def first_limit(f, dp):
    """The requests-per-minute limit a data plane enforces for a new 30 rpm
    key on its first request, before any demand is known: its equal share."""
    key = create_key(f.via("A"), "--rpm", "30")["key"]

    def known():
        try:
            client(f.url(dp), key).models.list()
            return True
        except anthropic.APIStatusError:
            return False

    assert wait_until(known, timeout=5)
    r = client(f.url(dp), key).messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=10, messages=HELLO
    )
    return r.headers["anthropic-ratelimit-requests-limit"]


def test_rate_limit_shares_follow_the_fleet_wide_data_plane_count(ha):
    # Two data planes, one on each replica: each enforces half, not all.
    assert first_limit(ha, "b") == "15"
    # A third joins: every share shrinks to a third.
    ha.start_dp_on("c", ["A", "B"])
    assert wait_until(lambda: first_limit(ha, "b") == "10", timeout=15, every=0.2)
    # One leaves: its lease ends with its stream, and the shares grow back.
    ha.stop_dp("c")
    assert wait_until(lambda: first_limit(ha, "a") == "15", timeout=15, every=0.2)


def test_a_key_whose_traffic_all_goes_to_one_of_three_data_planes_gets_nearly_its_whole_limit(ha):
    ha.start_dp_on("c", ["A", "B"])
    assert wait_until(lambda: len(ha.status("A")["dataplanes"]) == 3, timeout=10)
    key = create_key(ha.via("A"), "--rpm", "30")["key"]
    assert wait_until(lambda: works(ha.url("a"), key), timeout=5)
    admitted, refused = 1, 0
    deadline = time.monotonic() + 30
    # Pinned to "a": at first it has a third (10); as the control plane sees
    # the demand, "a" is given the rest but the floors of the idle two.
    while time.monotonic() < deadline and admitted < 40:
        try:
            client(ha.url("a"), key).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
            admitted += 1
        except anthropic.RateLimitError:
            refused += 1
            if admitted >= 27:
                break
            time.sleep(0.5)
    assert refused >= 1, "a third (10) at first: the shares moved only as demand showed"
    assert 27 <= admitted <= 30, (admitted, refused)
    # And the fleet as a whole does not go past the limit: the idle two keep
    # a floor of one each.
    extra = sum(works(ha.url(n), key) for n in ("b", "c") for _ in range(3))
    assert admitted + extra <= 32, (admitted, extra)


def test_a_lost_notification_is_caught_by_the_safety_net(ha, database):
    """A change committed without its NOTIFY (written straight into the
    database, as if the notification was lost) still reaches every data
    plane, through the replicas' periodic check."""
    created = create_key(ha.via("A"))
    key, key_id = created["key"], created["id"]
    assert wait_until(lambda: works(ha.url("a"), key) and works(ha.url("b"), key), timeout=5)
    psql(
        f"UPDATE api_keys SET status = 'disabled' WHERE id = '{key_id}'; "
        "UPDATE config_state SET revision = revision + 1 WHERE id = 1; "
        "INSERT INTO config_changes (revision, kind, name, at) "
        f"SELECT revision, 'key', '{key_id}', now() FROM config_state WHERE id = 1;",
        db=database,
    )
    assert wait_until(lambda: not works(ha.url("a"), key) and not works(ha.url("b"), key), timeout=10)


def test_singleton_work_moves_to_the_other_replica_when_its_holder_dies(ha):
    def holder(via):
        leases = {l["name"]: l["holder"] for l in ha.status(via).get("leases", [])}
        return leases.get("housekeeping")

    assert wait_until(lambda: holder("A") in ("cp-A", "cp-B"), timeout=10)
    first = holder("A")
    survivor = "B" if first == "cp-A" else "A"
    ha.kill_replica(first[-1])
    assert wait_until(lambda: holder(survivor) == f"cp-{survivor}", timeout=20), ha.status(survivor)


def test_login_throttling_is_shared_by_every_replica(ha):
    def fail(r):
        p = ha.via(r).ccag("login", "--username", "admin", "--password-stdin", stdin="wrong\n", check=False)
        assert p.returncode != 0
        return "too many failed sign-ins" in p.stderr

    # Failures on alternating replicas add up: the waits double from the
    # fifth, so one soon outlasts the time between two attempts.
    throttled_at = next((i for i in range(12) if fail("AB"[i % 2])), None)
    assert throttled_at is not None and throttled_at >= 5, throttled_at
    other = "AB"[(throttled_at + 1) % 2]
    assert fail(other), "the other replica must refuse as well"


def test_a_database_restored_from_an_older_backup_heals_by_itself(ha, database):
    """Data planes hold revisions the restored database never reached. The
    first replica to see one starts a new epoch; every data plane is sent
    the full state, so a key created after the backup stops working."""
    kept = create_key(ha.via("A"))["key"]
    assert wait_until(lambda: works(ha.url("a"), kept) and works(ha.url("b"), kept), timeout=5)
    backup = f"{database}_backup"
    ha.stop_replica("A")
    ha.stop_replica("B")
    psql(f"CREATE DATABASE {backup} TEMPLATE {database}")
    try:
        ha.start_replica("A")
        ha.start_replica("B")
        lost = create_key(ha.via("A"))["key"]
        assert wait_until(lambda: works(ha.url("a"), lost) and works(ha.url("b"), lost), timeout=10)
        ha.stop_replica("A")
        ha.stop_replica("B")
        psql(f"DROP DATABASE {database} WITH (FORCE)")
        psql(f"CREATE DATABASE {database} TEMPLATE {backup}")
        ha.start_replica("A")
        ha.start_replica("B")
        assert wait_until(lambda: not works(ha.url("a"), lost) and not works(ha.url("b"), lost), timeout=15)
        assert works(ha.url("a"), kept) and works(ha.url("b"), kept)
        s = ha.status("A")
        assert all(int(d["acked_version"]) == int(s["config_version"]) for d in s["dataplanes"]), s
    finally:
        psql(f"DROP DATABASE IF EXISTS {backup} WITH (FORCE)")

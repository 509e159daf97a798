"""Network topology of the suite: one network namespace per node slot on a
bridge, partitions with nftables inside the namespaces.

Every object carries the suite's prefix (PREFIX) so that leftovers of a run
that crashed can be found and removed at the next start:

    bridge   jlbr0            address 10.77.S.254/24 (the clients' side)
    netns    jl-n<i>          control-plane slot i: eth0 = 10.77.S.<i>/24, lo up
    veth     jlv<i>           host end, enslaved to jlbr0
    netns    jl-e<j>          edge j: eth0 = 10.77.S.<100+j>/24 (slot 100+j)
    veth     jlve<j>          host end of edge j
    nft      table inet jlpart (inside a namespace; partitions)

Only addresses of 10.77.S.0/24 are used, and only inside these namespaces
and on the bridge (fault-injection notes: send test traffic nowhere else).
"""

import os
import re
import shutil
import subprocess

PREFIX = "jl"
BRIDGE = PREFIX + "br0"
NFT_TABLE = PREFIX + "part"
EDGE_SLOT_BASE = 100     # edge j lives in slot 100 + j (address .100+j)


class NetError(RuntimeError):
    pass


def sh(args, check=True, input=None, timeout=20):
    """Run a command (no shell); returns stdout.  Raises NetError."""
    try:
        p = subprocess.run(args, input=input, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NetError("timed out: %s" % " ".join(args))
    if check and p.returncode != 0:
        raise NetError("%s: exit %d: %s" % (" ".join(args), p.returncode,
                                            (p.stderr or p.stdout).strip()))
    return p.stdout


def is_edge_slot(slot):
    return slot > EDGE_SLOT_BASE


def ns_name(slot):
    if is_edge_slot(slot):
        return "%s-e%d" % (PREFIX, slot - EDGE_SLOT_BASE)
    return "%s-n%d" % (PREFIX, slot)


def veth_name(slot):
    if is_edge_slot(slot):
        return "%sve%d" % (PREFIX, slot - EDGE_SLOT_BASE)
    return "%sv%d" % (PREFIX, slot)


def require_tools():
    missing = [t for t in ("ip", "nft") if shutil.which(t) is None]
    if missing:
        raise NetError("missing tools: %s (apt-get install -y iproute2 nftables)"
                       % ", ".join(missing))


def list_namespaces():
    out = sh(["ip", "netns", "list"], check=False)
    names = []
    for line in out.splitlines():
        if line.strip():
            names.append(line.split()[0])
    return names


def ns_pids(ns):
    out = sh(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in out.split() if x.isdigit()]


def cleanup_leftovers(log=print):
    """Remove every object with the suite's prefix: processes still running
    inside our namespaces (a crashed run's nodes), namespaces, veths, the
    bridge.  Returns the number of objects removed."""
    removed = 0
    pat = re.compile(r"^%s-[ne]\d+$" % re.escape(PREFIX))
    for ns in list_namespaces():
        if not pat.match(ns):
            continue
        for pid in ns_pids(ns):
            try:
                os.kill(pid, 9)
                log("cleanup: killed leftover pid %d in %s" % (pid, ns))
                removed += 1
            except ProcessLookupError:
                pass
        sh(["ip", "netns", "del", ns], check=False)
        log("cleanup: removed namespace %s" % ns)
        removed += 1
    links = sh(["ip", "-o", "link", "show"], check=False)
    for m in re.finditer(r"^\d+:\s+(%s(?:v\d+|ve\d+|br0))[@:]" % re.escape(PREFIX),
                         links, re.M):
        sh(["ip", "link", "del", m.group(1)], check=False)
        log("cleanup: removed link %s" % m.group(1))
        removed += 1
    return removed


class Topology:
    """Bridge + one namespace per slot (1..nslots) on 10.77.<subnet>.0/24,
    and one per edge (slots 101..100+nedges)."""

    def __init__(self, nslots, subnet=90, log=print, nedges=0):
        if not 1 <= subnet <= 254:
            raise ValueError("subnet must be 1..254")
        if not 0 <= nedges <= 50 or nslots >= EDGE_SLOT_BASE:
            raise ValueError("at most 50 edges and 99 node slots")
        self.nslots, self.subnet, self.log = nslots, subnet, log
        self.nedges = nedges
        self.created = False
        self.blocked = {}    # slot -> frozenset of slots whose packets it drops

    @staticmethod
    def edge_slot(j):
        return EDGE_SLOT_BASE + j

    @property
    def edge_slots(self):
        return [self.edge_slot(j) for j in range(1, self.nedges + 1)]

    @property
    def all_slots(self):
        return list(range(1, self.nslots + 1)) + self.edge_slots

    def addr(self, slot):
        return "10.77.%d.%d" % (self.subnet, slot)

    @property
    def bridge_addr(self):
        return "10.77.%d.254" % self.subnet

    def _check_free(self):
        net = "10.77.%d." % self.subnet
        routes = sh(["ip", "-4", "route", "show"], check=False)
        for line in routes.splitlines():
            if line.startswith(net) and BRIDGE not in line:
                raise NetError("10.77.%d.0/24 is already routed here (%s); pick "
                               "another --subnet" % (self.subnet, line.strip()))

    def create(self):
        require_tools()
        self._check_free()
        self.created = True
        sh(["ip", "link", "add", BRIDGE, "type", "bridge"])
        sh(["ip", "addr", "add", self.bridge_addr + "/24", "dev", BRIDGE])
        sh(["ip", "link", "set", BRIDGE, "up"])
        for s in self.all_slots:
            ns, veth = ns_name(s), veth_name(s)
            sh(["ip", "netns", "add", ns])
            sh(["ip", "link", "add", veth, "type", "veth", "peer", "name",
                "eth0", "netns", ns])
            sh(["ip", "link", "set", veth, "master", BRIDGE])
            sh(["ip", "link", "set", veth, "up"])
            sh(["ip", "-n", ns, "addr", "add", self.addr(s) + "/24", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])

    # ---- partitions ------------------------------------------------------
    def set_drops(self, slot, from_slots):
        """Make `slot`'s namespace drop every packet from `from_slots`
        (replaces its previous rules; empty = heal)."""
        from_slots = frozenset(s for s in from_slots if s != slot)
        if self.blocked.get(slot, frozenset()) == from_slots:
            return
        script = "table inet %s\ndelete table inet %s\n" % (NFT_TABLE, NFT_TABLE)
        if from_slots:
            addrs = ", ".join(self.addr(s) for s in sorted(from_slots))
            script += ("table inet %s {\n chain input {\n  type filter hook "
                       "input priority 0; policy accept;\n  ip saddr { %s } drop\n"
                       " }\n}\n" % (NFT_TABLE, addrs))
        sh(["ip", "netns", "exec", ns_name(slot), "nft", "-f", "-"], input=script)
        self.blocked[slot] = from_slots

    def partition(self, grudge):
        """grudge: {slot: set of slots it must not hear from}.  Node slots
        not named are healed (edges keep their own rules)."""
        for s in range(1, self.nslots + 1):
            self.set_drops(s, grudge.get(s, ()))

    def partition_edges(self, grudge):
        """The same for the edges' namespaces: {edge slot: node slots it
        must not hear from}; edges not named are healed."""
        for s in self.edge_slots:
            self.set_drops(s, grudge.get(s, ()))

    def heal(self):
        for s in self.all_slots:
            try:
                self.set_drops(s, ())
            except NetError as e:
                self.log("heal %d: %s" % (s, e))
                self.blocked.pop(s, None)

    def destroy(self):
        if not self.created:
            return
        for s in self.all_slots:
            sh(["ip", "netns", "del", ns_name(s)], check=False)
            sh(["ip", "link", "del", veth_name(s)], check=False)
        sh(["ip", "link", "del", BRIDGE], check=False)
        self.created = False


# ---- grudges (who drops whom) ----------------------------------------------

def grudge_split(groups):
    """Complete split: every node drops packets from nodes of other groups."""
    g = {}
    for i, a in enumerate(groups):
        others = set().union(*[b for j, b in enumerate(groups) if j != i]) \
            if len(groups) > 1 else set()
        for s in a:
            g[s] = set(others)
    return g


def grudge_bridge(nodes, rng):
    """Jepsen's 'bridge' (a ring cut in two halves that share one node):
    the halves cannot talk to each other, the bridge node hears both."""
    nodes = list(nodes)
    rng.shuffle(nodes)
    mid = len(nodes) // 2
    bridge = nodes[mid]
    a, b = nodes[:mid], nodes[mid + 1:]
    g = {s: set(b) for s in a}
    g.update({s: set(a) for s in b})
    g[bridge] = set()
    return g, bridge, a, b


def grudge_ring(nodes, rng):
    """Ring: every node hears only its two neighbours on a random ring (no
    majority is fully connected for 5 nodes, each node sees a majority)."""
    nodes = list(nodes)
    rng.shuffle(nodes)
    n = len(nodes)
    g = {}
    for i, s in enumerate(nodes):
        nb = {nodes[(i - 1) % n], nodes[(i + 1) % n]}
        g[s] = set(nodes) - nb - {s}
    return g, nodes

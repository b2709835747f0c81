# shellcheck shell=bash
# Loopback port helpers for the hack/ scripts (sourced, not run).
#
# A "spec" names what a port must be free for: "tcp", or "tcp+udp" (DNS).
# Ports are only ever on 127.0.0.1.

# ports_auto SPEC...: print one free loopback port per SPEC (space separated),
# all distinct. Ports are picked at random below the kernel's ephemeral range
# (ip_local_port_range), so an outgoing connection made while the servers are
# starting cannot take a port that was chosen for a listener. Every port is
# held open until all are chosen, then released for the servers to bind.
ports_auto() {
  python3 - auto "$@" <<'PY'
import random, socket, sys

def grab(port, spec):
    socks = []
    try:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        socks.append(t)
        t.bind(("127.0.0.1", port))
        if "udp" in spec:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(u)
            u.bind(("127.0.0.1", port))
    except OSError:
        for s in socks:
            s.close()
        return None
    return socks

specs = sys.argv[2:]
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = map(int, f.read().split())
except (OSError, ValueError):
    lo, hi = 32768, 60999
candidates = [p for p in range(10000, 65536) if not lo <= p <= hi]
random.shuffle(candidates)
held, out = [], []
for spec in specs:
    got = None
    while candidates and got is None:
        port = candidates.pop()
        got = grab(port, spec)
    if got is None:  # no room outside the ephemeral range: let the kernel choose
        for _ in range(100):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            probe.close()
            if port not in out:
                got = grab(port, spec)
                if got is not None:
                    break
    if got is None:
        sys.exit("no free loopback port found for %s" % spec)
    held.extend(got)
    out.append(port)
print(" ".join(map(str, out)))
PY
}

# ports_busy PORT SPEC: succeed (exit 0) when PORT cannot be bound on
# 127.0.0.1 for SPEC, i.e. something else already has it.
ports_busy() {
  ! python3 - "$1" "$2" <<'PY'
import socket, sys
port, spec = int(sys.argv[1]), sys.argv[2]
kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if "udp" in spec else [])
socks = []
try:
    for kind in kinds:
        s = socket.socket(socket.AF_INET, kind)
        socks.append(s)
        s.bind(("127.0.0.1", port))
except OSError:
    sys.exit(1)
finally:
    for s in socks:
        s.close()
PY
}

# ports_holder PORT: a short description of who listens on PORT, if ss can
# tell (empty otherwise).
ports_holder() {
  command -v ss >/dev/null || return 0
  ss -Htulnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n 1 || true
}

# ports_bindable PORT SPEC: succeed when a server could bind PORT on 127.0.0.1
# for SPEC right now and listen on it. TCP is tried with SO_REUSEADDR, as
# etcd, kube-apiserver and named bind (connections of a previous server in
# TIME_WAIT do not count; a listener does); UDP is tried without it, so that
# any live UDP socket on PORT counts.
ports_bindable() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
port, spec = int(sys.argv[1]), sys.argv[2]
socks = []
try:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    socks.append(t)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", port))
    t.listen(1)
    if "udp" in spec:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks.append(u)
        u.bind(("127.0.0.1", port))
except OSError:
    sys.exit(1)
finally:
    for s in socks:
        s.close()
PY
}

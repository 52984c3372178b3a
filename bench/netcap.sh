# SPDX-License-Identifier: MIT
# A capped link for the benchmarks: two network namespaces (client and
# server) joined by a veth pair, the client's side shaped with htb. This
# kernel has no netem, fq or police action, so htb alone does the capping.
# Source after bench/lib.sh and bench_init; call cap_up, then cap_shape.
# Needs root. Every flow is an upload, so only client -> server is shaped;
# the ACKs come back unshaped.
# shellcheck shell=bash

cap_cli=pfb-cli-$$
cap_srv=pfb-srv-$$
cap_dev=pfbc$$
cap_addr=10.77.0.2		# the server's address, in $cap_srv

# The client's ephemeral ports: 128 of them, aligned on 128, so the low
# seven bits of the source port tell the flows apart. 64 streams and a
# control connection fit, with room for ports in TIME_WAIT.
cap_port0=40960
cap_nports=128

# cap_up: makes the namespaces and the link, and narrows the client's
# port range; cap_down (run at exit) removes them.
cap_up() {
	ip netns add "$cap_cli"
	ip netns add "$cap_srv"
	ip link add "$cap_dev" netns "$cap_cli" type veth \
	    peer name "${cap_dev}s" netns "$cap_srv"
	ip -n "$cap_cli" addr add 10.77.0.1/24 dev "$cap_dev"
	ip -n "$cap_srv" addr add "$cap_addr/24" dev "${cap_dev}s"
	ip -n "$cap_cli" link set "$cap_dev" up
	ip -n "$cap_srv" link set "${cap_dev}s" up
	ip -n "$cap_cli" link set lo up
	ip -n "$cap_srv" link set lo up
	local last=$((cap_port0 + cap_nports - 1))
	ip netns exec "$cap_cli" sysctl -qw \
	    net.ipv4.ip_local_port_range="$cap_port0 $last"
	# Runs one after another reuse the same few ports.
	ip netns exec "$cap_cli" sysctl -qw net.ipv4.tcp_tw_reuse=1
}

cap_down() {
	ip netns del "$cap_cli" 2>/dev/null || true
	ip netns del "$cap_srv" 2>/dev/null || true
}

# cap_shape flow|link RATE: caps every TCP flow at RATE (one htb class
# per source port: a u32 hash table keyed on the source port's low seven
# bits, one bucket per port of the narrowed range, so two flows never
# share a class), or the whole link at RATE (one class for all flows).
cap_shape() {
	local mode=$1 rate=$2 tcn="tc -n $cap_cli" i b c
	$tcn qdisc del dev "$cap_dev" root 2>/dev/null || true
	$tcn qdisc add dev "$cap_dev" root handle 1: htb default 1 r2q 1000
	if [ "$mode" = link ]; then
		$tcn class add dev "$cap_dev" parent 1: classid 1:1 htb \
		    rate "$rate"
		return
	fi
	# ARP and anything unhashed: unshaped.
	$tcn class add dev "$cap_dev" parent 1: classid 1:1 htb rate 10gbit \
	    quantum 60000
	$tcn filter add dev "$cap_dev" parent 1: prio 1 protocol ip \
	    handle 10: u32 divisor "$cap_nports"
	# The TCP source port is the high half of the word 20 bytes into
	# the IP header (Linux sends no IP options).
	$tcn filter add dev "$cap_dev" parent 1: prio 1 protocol ip u32 \
	    ht 800:: match ip protocol 6 0xff \
	    hashkey mask "$(printf '0x%08x' $(((cap_nports - 1) << 16)))" \
	    at 20 link 10:
	for ((i = 0; i < cap_nports; i++)); do
		b=$(printf %x "$i")
		c=$(printf %x $((0x100 + i)))
		$tcn class add dev "$cap_dev" parent 1: classid "1:$c" htb \
		    rate "$rate" quantum 60000
		$tcn filter add dev "$cap_dev" parent 1: prio 1 protocol ip \
		    u32 ht "10:$b:" match ip protocol 6 0xff flowid "1:$c"
	done
}

# cap_classes_used: how many per-flow classes carried traffic since the
# last cap_shape (a check that flows did spread over classes).
cap_classes_used() {
	tc -n "$cap_cli" -s class show dev "$cap_dev" |
	    awk '/^class htb 1:1[0-9a-f][0-9a-f] / { c = 1; next }
		c && /Sent/ { if ($2 > 0) n++; c = 0 }
		END { print n + 0 }'
}

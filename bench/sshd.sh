# SPDX-License-Identifier: MIT
# A throwaway sshd on 127.0.0.1 for the benchmarks' scp and rsync -e ssh
# baselines: its own host key, config and client key under $work/ssh,
# an ephemeral port, stopped with the benchmark. Source it after
# bench/lib.sh and bench_init; call sshd_up, then use $ssh_cmd.
# shellcheck shell=bash

# sshd_up: starts the server; sets ssh_port, ssh_opts (the client's
# options, for ssh -p and scp -P) and ssh_cmd (one string, for rsync -e),
# logging in as the current user. sshd_launch, if set, is a command the
# server runs under (bench/peers.sh: "cg_exec srv", to count its CPU).
sshd_up() {
	local d=$work/ssh
	bench_need openssh-server openssh-client rsync
	mkdir -p "$d" /run/sshd
	chmod 700 "$d"
	ssh-keygen -q -t ed25519 -N '' -f "$d/host" </dev/null
	ssh-keygen -q -t ed25519 -N '' -f "$d/client" </dev/null
	cp "$d/client.pub" "$d/authorized_keys"
	chmod 600 "$d/authorized_keys"
	ssh_port=$((30000 + RANDOM % 20000))
	cat >"$d/sshd_config" <<CFG
ListenAddress 127.0.0.1
Port $ssh_port
HostKey $d/host
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile $d/sshd.pid
Subsystem sftp internal-sftp
CFG
	# shellcheck disable=SC2086
	${sshd_launch:-} /usr/sbin/sshd -D -e -f "$d/sshd_config" \
	    2>>"$d/sshd.log" &
	pids+=($!)
	ssh_opts=(-i "$d/client" -o BatchMode=yes -o StrictHostKeyChecking=no
	    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
	ssh_cmd="ssh -p $ssh_port ${ssh_opts[*]}"
	for _ in $(seq 50); do
		ssh -p "$ssh_port" "${ssh_opts[@]}" 127.0.0.1 true 2>/dev/null &&
		    return 0
		sleep 0.1
	done
	echo "sshd did not start:" >&2
	cat "$d/sshd.log" >&2
	return 1
}

#!/bin/sh
# SPDX-License-Identifier: MIT
# Makes pg_scram.txt: SCRAM-SHA-256 verifiers computed by PostgreSQL itself
# (password_encryption = scram-sha-256), with the passwords they were made
# from, for tests/unit/test_auth.c. Skips (exit 77) without PostgreSQL.
# Run by hand, as root (it runs PostgreSQL as the postgres user) or as an
# unprivileged user: sh tests/vectors/make_pg_scram.sh > pg_scram.txt
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -n 1)
[ -n "$bin" ] && [ -x "$bin/postgres" ] || { echo "no PostgreSQL" >&2; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run=""
if [ "$(id -u)" = 0 ]; then
	chown postgres "$dir"
	run="runuser -u postgres --"
fi
$run "$bin/initdb" -D "$dir/db" -U pg --auth=trust -E UTF8 \
    --locale=C.UTF-8 >/dev/null
# user<TAB>password: plain ASCII, Latin-1 letters, Japanese, a no-break
# space (SASLprep maps it to a space) and U+2168 ROMAN NUMERAL NINE
# (SASLprep's NFKC makes it "IX").
cat > "$dir/users" <<'USERS'
ascii	pencil
latin	pässwörd
kana	パスワード
roman	Ⅸ
USERS
printf 'nbsp\ta\302\240b\n' >> "$dir/users"
{
	echo "SET password_encryption = 'scram-sha-256';"
	while IFS='	' read -r u p; do
		echo "CREATE ROLE $u LOGIN PASSWORD '$p';"
	done < "$dir/users"
	echo "COPY (SELECT rolname, rolpassword FROM pg_authid WHERE"
	echo "    rolname IN ('ascii','latin','kana','nbsp','roman')"
	echo "    ORDER BY oid) TO '$dir/out';"
} | $run "$bin/postgres" --single -D "$dir/db" -j postgres >/dev/null 2>&1
echo "# user<TAB>password (UTF-8)<TAB>verifier made by PostgreSQL $("$bin/postgres" --version | awk '{print $3}')"
while IFS='	' read -r u v; do
	p=$(awk -F '	' -v u="$u" '$1 == u { print $2 }' "$dir/users")
	printf '%s\t%s\t%s\n' "$u" "$p" "$v"
done < "$dir/out"

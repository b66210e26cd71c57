#!/bin/sh
# Render the broker definitions with the per-service password hashes, then start RabbitMQ.
#
# definitions.json (in git) has every user with an empty password_hash: such a user cannot
# log in with a password. At start this fills in, for each user tai-<name>, the hash of
# $RABBITMQ_PASSWORD_TAI_<NAME> (tai-admin: $RABBITMQ_PASSWORD_TAI_ADMIN, required; an
# outside subscriber tai-ext-<name>: $RABBITMQ_PASSWORD_TAI_EXT_<NAME>, "-" read as "_") in
# RabbitMQ's rabbit_password_hashing_sha256 format: base64(salt || sha256(salt || password))
# with a random 4-byte salt. A service whose variable is unset stays unable to log in.
# The rendered file lives on a tmpfs (/run/tai-rabbitmq): hashes never reach a disk or git.
#
#   tai-render-definitions.sh SOURCE TARGET [COMMAND...]
set -eu

source_file=${1:?usage: tai-render-definitions.sh SOURCE TARGET [COMMAND...]}
target_file=${2:?usage: tai-render-definitions.sh SOURCE TARGET [COMMAND...]}
shift 2

: "${RABBITMQ_PASSWORD_TAI_ADMIN:?set RABBITMQ_PASSWORD_TAI_ADMIN (the operators account)}"

hash_password() {
	work=$(mktemp)
	openssl rand 4 > "$work"
	printf '%s' "$1" >> "$work"
	{ head -c 4 "$work"; openssl dgst -sha256 -binary "$work"; } | openssl base64 -A
	rm -f "$work"
}

umask 077
mkdir -p "$(dirname "$target_file")"
assignments=""
# users are the entries whose "name" line is followed by a "password_hash" line
for user in $(sed -n '/^ *"name": "tai-[a-z0-9-]*",$/{N;s/^ *"name": "\(tai-[a-z0-9-]*\)",\n *"password_hash".*/\1/p;}' "$source_file"); do
	variable=RABBITMQ_PASSWORD_$(printf '%s' "$user" | tr 'a-z-' 'A-Z_')
	eval "password=\${$variable:-}"
	if [ -n "$password" ]; then
		assignments="$assignments $user=$(hash_password "$password")"
	else
		echo "tai-render-definitions: $variable is unset: $user cannot log in" >&2
	fi
done

# the users' entries are "name" then "password_hash" on the next line (json indent=2)
awk -v assignments="$assignments" '
	BEGIN { count = split(assignments, pairs, " "); for (i = 1; i <= count; i++) { split(pairs[i], kv, "="); hashes[kv[1]] = substr(pairs[i], length(kv[1]) + 2) } }
	/^ *"name": "tai-[a-z0-9-]*",$/ { match($0, /tai-[a-z0-9-]*/); user = substr($0, RSTART, RLENGTH) }
	/^ *"password_hash": "",$/ && (user in hashes) { sub(/""/, "\"" hashes[user] "\"") }
	{ print }
' "$source_file" > "$target_file"

if [ "$#" -gt 0 ]; then
	exec "$@"
fi

#!/bin/bash
# Make a CA, a server certificate, a client certificate and a token for a
# quick swerexd TLS set-up (openssl CLI only).
#
#   swerex-certs DIR [options]    (contrib/swerex-certs.sh in the source tree)
#     --name NAME     add NAME (a host name or an IP address) to the server
#                     certificate; repeatable (always: localhost, 127.0.0.1, ::1)
#     --days N        validity in days (default 825)
#     --expired       make server and client certificates that expired a year ago
#     --ca-from DIR   sign with the CA already in DIR instead of making one
#
# Writes into DIR: ca.pem ca.key server.pem server.key client.pem client.key
# token (keys and token mode 0600). Then, for example:
#   swerexd --listen tls://0.0.0.0:7443 --tls-cert DIR/server.pem \
#           --tls-key DIR/server.key --token-file DIR/token
#   swerex -S tls://HOST:7443 --ca DIR/ca.pem --token-file DIR/token alive
set -euo pipefail

usage() { sed -n '2,17s/^# \{0,1\}//p' "$0"; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
dir=$1; shift
days=825 expired=0 ca_from=
names=(localhost 127.0.0.1 ::1)
while [ $# -gt 0 ]; do
	case "$1" in
	--name) names+=("$2"); shift 2 ;;
	--days) days=$2; shift 2 ;;
	--expired) expired=1; shift ;;
	--ca-from) ca_from=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "swerex-certs.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
	esac
done
command -v openssl >/dev/null || { echo "swerex-certs.sh: needs the openssl command (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$dir"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -n "$ca_from" ]; then
	cp "$ca_from/ca.pem" "$ca_from/ca.key" "$dir/" 2>/dev/null || [ "$ca_from" -ef "$dir" ]
else
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$days" \
		-subj "/CN=swerexd test CA $(date +%s%N)" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi

san=
for n in "${names[@]}"; do
	if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san=${san%,}

# sign NAME CN EXTENSIONS: a key and a certificate signed by the CA.
sign() {
	local name=$1 cn=$2 ext=$3
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/$name.key" -out "$work/$name.csr" -subj "/CN=$cn" 2>/dev/null
	printf '%s\n' "$ext" > "$work/$name.ext"
	if [ "$expired" = 1 ]; then
		# openssl x509 cannot back-date; the ca command can.
		mkdir -p "$work/db"; : > "$work/db/index"; echo 01 > "$work/db/serial"
		cat > "$work/ca.cnf" <<EOF
[ca]
default_ca = c
[c]
database = $work/db/index
serial = $work/db/serial
new_certs_dir = $work/db
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
EOF
		openssl ca -batch -config "$work/ca.cnf" -cert "$dir/ca.pem" \
			-keyfile "$dir/ca.key" -in "$work/$name.csr" -out "$dir/$name.pem" \
			-startdate "$(date -u -d '-2 years' +%Y%m%d%H%M%SZ)" \
			-enddate "$(date -u -d '-1 year' +%Y%m%d%H%M%SZ)" \
			-extfile "$work/$name.ext" -notext 2>/dev/null
	else
		openssl x509 -req -in "$work/$name.csr" -CA "$dir/ca.pem" \
			-CAkey "$dir/ca.key" -CAcreateserial -days "$days" \
			-extfile "$work/$name.ext" -out "$dir/$name.pem" 2>/dev/null
	fi
}

sign server swerexd "subjectAltName=$san
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
sign client swerex-client "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
rm -f "$dir/ca.srl"

if [ ! -s "$dir/token" ]; then
	openssl rand -hex 32 > "$dir/token"
fi
chmod 600 "$dir"/*.key "$dir/token"
chmod 644 "$dir"/*.pem
echo "swerex-certs.sh: wrote CA, server and client certificates and a token to $dir" >&2
